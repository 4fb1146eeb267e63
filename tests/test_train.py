import numpy as np
import pytest

from emotion.model import build_little_vgg
from emotion.train import compile_model


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

    random = np.random.default_rng(0)
    faces = random.integers(0, 255, (8, 48, 48, 1)).astype(np.float32)
    targets = np.eye(5, dtype=np.float32)[random.integers(0, 5, 8)]
    with tf.variable_creator_scope(record):
        model.fit(faces, targets, batch_size=8, epochs=1, verbose=0)
    assert made_during_fit == []
    assert model.optimizer.iterations.numpy() == 1  # the step ran
