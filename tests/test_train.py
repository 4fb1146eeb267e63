import numpy as np
import pytest

from emotion.batches import one_hot_targets
from emotion.model import build_little_vgg
from emotion.train import compile_model, reestimate_batch_norm


def random_faces(count):
    """count random 48x48 grey images with random five-class one-hot targets."""
    random = np.random.default_rng(0)
    return random.integers(0, 255, (count, 48, 48, 1)).astype(np.float32), one_hot_targets(random.integers(0, 5, count), 5)


@pytest.mark.parametrize(("optimizer", "weight_averaging"), [("adamw", False), ("sgd", True)])
def test_compile_model_makes_every_variable_of_a_step_so_the_step_is_traced_once(optimizer, weight_averaging):
    # A variable first made inside the traced step makes tf.function trace the whole step again.
    import tensorflow as tf
    model = compile_model(build_little_vgg(5), 1e-3, steps_per_epoch=1, epochs=1, label_smoothing=0.0,
                          weight_averaging=weight_averaging, optimizer=optimizer)
    made_during_fit = []

    def record(make_variable, **details):
        made_during_fit.append(details.get("name"))
        return make_variable(**details)

    faces, targets = random_faces(8)
    with tf.variable_creator_scope(record):
        model.fit(faces, targets, batch_size=8, epochs=1, verbose=0)
    assert made_during_fit == []
    assert model.optimizer.iterations.numpy() == 1  # the step ran


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_learning_rate_warms_up_for_an_epoch_from_a_tenth_then_follows_a_cosine_down_to_a_hundredth(optimizer):
    model = compile_model(build_little_vgg(5), 1e-2, steps_per_epoch=10, epochs=5, label_smoothing=0.0,
                          optimizer=optimizer)
    learning_rates = {}
    for step in (0, 5, 10, 30, 50):
        model.optimizer.iterations.assign(step)
        learning_rates[step] = float(model.optimizer.learning_rate)
    # Warm-up: linear over the first epoch's 10 steps; then 40 steps of cosine, at half of its way at step 30.
    assert learning_rates == pytest.approx({0: 1e-3, 5: 5.5e-3, 10: 1e-2, 30: 1e-2 * (0.01 + 0.99 * 0.5), 50: 1e-4})


def test_sgd_is_nesterov_momentum_with_weight_decay_and_the_default_is_adamw():
    import keras
    sgd = compile_model(build_little_vgg(5), 1e-2, 1, 1, label_smoothing=0.0, optimizer="sgd").optimizer
    assert isinstance(sgd, keras.optimizers.SGD)
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay) == (0.9, True, pytest.approx(5e-4))
    assert isinstance(compile_model(build_little_vgg(5), 1e-3, 1, 1, label_smoothing=0.0).optimizer,
                      keras.optimizers.AdamW)


def test_the_loss_spreads_the_given_share_of_each_target_over_the_classes():
    targets = np.eye(5, dtype=np.float32)[[0, 3]]
    losses = {smoothing: float(compile_model(build_little_vgg(5), 1e-3, 1, 1, smoothing).loss(targets, targets))
              for smoothing in (0.0, 0.2)}
    assert losses[0.0] == pytest.approx(0.0, abs=1e-5)  # a sure, right answer costs nothing without smoothing
    assert losses[0.2] > 1.0  # with it, a sure answer is penalised: the target of each other class is 0.04


def test_weight_averaging_puts_the_average_weights_in_the_model_at_each_epoch_end():
    # Validation and the checkpoints see the model at an epoch's end: with averaging that must be the average.
    import keras
    faces, targets = random_faces(32)

    def moved_by_first_epoch_end(**averaging):
        model = compile_model(build_little_vgg(5), 1e-2, steps_per_epoch=4, epochs=2, label_smoothing=0.0,
                              **averaging)
        start = [weight.numpy().copy() for weight in model.trainable_weights]
        moved = []
        watch = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: moved.append(max(
            np.abs(weight.numpy() - before).max() for weight, before in zip(model.trainable_weights, start,
                                                                             strict=True))))
        history = model.fit(faces, targets, batch_size=8, epochs=2, validation_data=(faces, targets), verbose=0,
                            callbacks=[watch])
        assert {"accuracy", "val_accuracy"} <= set(history.history)  # the names the checkpoints and report watch
        return moved[0]

    # The average starts at the weights after the first step (at the warm-up's 1e-3) and then moves by a
    # thousandth of each later step, so it stays near that first step while the weights go on with three more.
    assert moved_by_first_epoch_end(weight_averaging=True) < moved_by_first_epoch_end() / 4


def test_reestimating_sets_batch_norm_statistics_to_their_mean_over_the_faces_and_their_mirror_images():
    import keras
    model = build_little_vgg(5)
    # Brighter to the right, so that a face and its mirror image give the first layer different activations, and
    # brighter by groups of 8, so that batches of 8 differ.
    faces = (random_faces(32)[0] / 4 + np.linspace(0, 60, 48)[None, None, :, None]
             + np.repeat([0, 30, 60, 90], 8)[:, None, None, None])
    both = np.concatenate([faces, faces[:, :, ::-1]])
    activations = keras.Model(model.input, model.get_layer("block1_elu1").output).predict(both, verbose=0)
    first = model.get_layer("block1_bn1")

    reestimate_batch_norm(model, faces, batch_size=32)  # one batch: the statistics of all 64 faces
    np.testing.assert_allclose(first.moving_mean, activations.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance, activations.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
    reestimate_batch_norm(model, faces, batch_size=8)  # four batches weigh alike: their means' mean is the mean
    np.testing.assert_allclose(first.moving_mean, activations.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 12 and all(np.any(np.asarray(layer.moving_mean) != 0) for layer in norms)
    assert {layer.momentum for layer in norms} == {0.99}  # training's own momentum is back
