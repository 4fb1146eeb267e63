"""Train the five-block little VGG on 48x48 grey face folders and save Emotion_little_vgg.h5.

    python training.py --train-dir ../shared/fer2013/train --val-dir ../shared/fer2013/test
    python training.py --resume                    # continue a run that was interrupted
    python training.py --epochs 1 --max-per-class 20   # quick smoke run
    python training.py --reestimate-batchnorm Emotion_little_vgg.h5 --train-dir ../shared/fer2013/train \
        --val-dir ../shared/fer2013/test              # re-estimate a trained model's BatchNorm statistics
"""
import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from emotion.console import command_parser, load_quietly
from emotion.constants import DEFAULT_CLASS_NAMES

# TensorFlow turns oneDNN on by itself only on CPUs with AVX-512-class features, though on an AVX2 CPU it makes this
# net's training step about 1.7x faster (docs/speed.md). Read when TensorFlow loads, so set before it; a user's own
# setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Peak learning rate of each --optimizer: SGD's steps are not scaled per weight as Adam's are, so it needs larger.
DEFAULT_LEARNING_RATES = {"adamw": 2e-3, "sgd": 1e-2}


def parse_args(argv=None):
    # Each group and help line is the README's ("Training: `training.py`"), word for word; a test holds them together.
    parser = command_parser(__doc__, [("data and labels", add_data_options), ("schedule", add_schedule_options),
                                      ("targets and augmentation", add_target_options),
                                      ("starting points and teachers", add_starting_options),
                                      ("output, and runs that train nothing", add_output_options)])
    return checked(parser.parse_args(argv))


def add_data_options(group):
    group.add_argument("--train-dir", default="train", help="training images, one sub-folder per class")
    group.add_argument("--val-dir", default="test", help="validation images, one sub-folder per class")
    group.add_argument("--csv", default=None, help="train from the Kaggle fer2013.csv instead of folders: its Training "
                       "rows train, its PublicTest rows validate")
    group.add_argument("--classes", default=",".join(DEFAULT_CLASS_NAMES),
                       help="class folders to use, in output order; add disgust,fear for all seven")
    group.add_argument("--extra-classes", default=None, metavar="NAMES",
                       help="class folders learnt from the training images but not answered, e.g. fear,disgust: their "
                       "faces also teach the network, and the saved model drops their outputs")
    group.add_argument("--max-per-class", type=int, default=None,
                       help="cap images per class (quick experiments, smoke runs)")
    group.add_argument("--votes", default=None, metavar="CSV",
                       help="learn FER+'s ten votes per face instead of the folder labels: the training images' votes "
                       "file (as ../shared/ferplus/train.csv)")
    group.add_argument("--val-votes", default=None, metavar="CSV",
                       help="the validation images' votes file (as ../shared/ferplus/test.csv): validate against "
                       "FER+'s majority label")
    group.add_argument("--ferplus", default=None, metavar="CSV",
                       help="with --csv: FER+'s fer2013new.csv as published, whose row i holds the votes of "
                       "fer2013.csv's row i")


def add_schedule_options(group):
    group.add_argument("--epochs", type=int, default=60, help="most epochs (early stopping may end sooner)")
    group.add_argument("--patience", type=int, default=10,
                       help="epochs without a better validation accuracy before stopping")
    group.add_argument("--batch-size", type=int, default=64, help="images per step (per GPU when several are used)")
    group.add_argument("--optimizer", choices=tuple(DEFAULT_LEARNING_RATES), default="adamw",
                       help="adamw, or sgd: SGD with Nesterov momentum 0.9 and weight decay 5e-4")
    group.add_argument("--learning-rate", type=float, default=None,
                       help=f"peak learning rate ({DEFAULT_LEARNING_RATES['sgd']:g} with --optimizer sgd): one "
                       "warm-up epoch, then cosine decay")
    group.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="auto",
                       help="auto picks mixed_bfloat16 where the hardware computes bfloat16 fast (a TPU, an NVIDIA "
                       "GPU from Ampere on, an Intel CPU with AVX-512 BF16 or AMX), else float32")
    group.add_argument("--seed", type=int, default=1337, help="weights, shuffling and augmentation")


def add_target_options(group):
    group.add_argument("--class-weight-power", type=float, default=0.5,
                       help="class weights (mean count / class count) ** power: 1 balances the classes fully, 0 "
                       "not at all")
    group.add_argument("--label-smoothing", type=float, default=0.1,
                       help="share of each target spread evenly over all classes")
    group.add_argument("--camera-artefacts", action="store_true",
                       help="also augment with JPEG recompression, blur, exposure and sensor noise, as webcams and "
                       "phones give (TensorFlow backend only; no gain measured yet)")
    group.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                       help="blend each training image and its target with another of its batch, by a weight drawn "
                       "per image from Beta(ALPHA, ALPHA); 0.2 is the usual ALPHA, 0 turns it off")
    group.add_argument("--weight-averaging", action="store_true",
                       help="validate, checkpoint and save a moving average of the weights (over about 1000 steps) "
                       "instead of the last step's weights")


def add_starting_options(group):
    group.add_argument("--init-from", default=None, metavar="MODEL_H5",
                       help="start from a trained model's weights (the same classes, in the same order) instead of "
                       "random ones, to train it further")
    group.add_argument("--teacher", action="append", metavar="MODEL_H5",
                       help="distil: learn also from a trained model's answers on each training image; repeat it to "
                       "learn from the mean of several models")
    group.add_argument("--teacher-weight", type=float, default=0.5,
                       help="share of each training target taken from the teachers' answers (above 0, at most 0.5: "
                       "the true class keeps the largest share)")
    group.add_argument("--hold-out", default=None, metavar="K/N",
                       help="K/N: train without the K-th of N folds of the training images and record that in the "
                       "model; given as a --teacher, it answers only for that fold, images it never saw")


def add_output_options(group):
    group.add_argument("--reestimate-batchnorm", default=None, metavar="MODEL_H5",
                       help="re-estimate a trained model's BatchNorm statistics on the training images, as every run "
                       "does after its last epoch, and save it as --model-out with its report")
    # Its name until 2026-12, still accepted: "calibrate" now means only test.py's neutral-face correction.
    group.add_argument("--recalibrate", dest="reestimate_batchnorm", help=argparse.SUPPRESS)
    group.add_argument("--convert", default=None, metavar="MODEL_H5",
                       help="save a trained model, such as a Keras 2 .h5 of the original toolkit, as --model-out "
                       "with --classes as its class names and its pixel scaling inside, so that test.py loads it "
                       "with nothing assumed")
    group.add_argument("--model-out", default="Emotion_little_vgg.h5",
                       help="the model; its report, log and checkpoints go beside it")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its last completed epoch")


def checked(args):
    """args with --classes, --extra-classes and --hold-out parsed and the default learning rate filled in; one error
    line for options that cannot work together."""
    args.classes = [name.strip().lower() for name in args.classes.split(",") if name.strip()]
    if args.learning_rate is None:
        args.learning_rate = DEFAULT_LEARNING_RATES[args.optimizer]
    if args.extra_classes:
        args.extra_classes = [name.strip().lower() for name in args.extra_classes.split(",") if name.strip()]
    if args.ferplus and not args.csv:
        raise SystemExit("error: --ferplus goes with --csv (the fer2013.csv its rows belong to); for image folders "
                         "give --votes")
    if (args.votes or args.val_votes) and args.csv:
        raise SystemExit("error: --votes and --val-votes label image folders; with --csv give --ferplus "
                         "fer2013new.csv")
    if len(args.classes) < 2:
        raise SystemExit("error: --classes needs at least two class names")
    if args.extra_classes and set(args.extra_classes) & set(args.classes):
        raise SystemExit("error: --extra-classes must not repeat a class of --classes")
    if args.extra_classes and (args.teacher or args.init_from):
        raise SystemExit("error: --extra-classes cannot be combined with --teacher or --init-from, whose models "
                         "answer only --classes")
    if args.reestimate_batchnorm and (args.init_from or args.teacher or args.hold_out or args.resume):
        raise SystemExit("error: --reestimate-batchnorm trains nothing: it cannot be combined with --init-from, "
                         "--teacher, --hold-out or --resume")
    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("error: --epochs and --batch-size must be at least 1")
    if args.mixup < 0:
        raise SystemExit("error: --mixup must be 0 (off) or more")
    if not 0 < args.teacher_weight <= 0.5:
        raise SystemExit("error: --teacher-weight must be above 0 and at most 0.5")
    if args.hold_out:
        fold, _, folds = args.hold_out.partition("/")
        if not (fold.isdigit() and folds.isdigit() and 1 <= int(fold) <= int(folds) and int(folds) >= 2):
            raise SystemExit(f"error: --hold-out {args.hold_out}: give K/N, fold K of N folds (1 <= K <= N, N >= 2), "
                             "e.g. 1/2")
        args.hold_out = {"fold": int(fold), "folds": int(folds)}
    return args


def gpu_compute_capability():
    """(major, minor) CUDA compute capability of the first GPU, as the Keras backend reports it; (0, 0) where it
    reports none (a GPU of another maker)."""
    import keras
    if keras.backend.backend() == "jax":
        import jax
        capability = getattr(jax.devices("gpu")[0], "compute_capability", "0.0")  # a string, "8.6"
        return tuple(int(part) for part in capability.split("."))
    import tensorflow as tf
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return tuple(details.get("compute_capability", (0, 0)))


def hardware_has_bfloat16():
    """True where bfloat16 maths pays: a TPU, an NVIDIA GPU from Ampere on (compute capability 8.0: older
    ones, such as the T4 and V100, emulate it slowly), or an Intel CPU with AVX-512 BF16 or AMX (Linux flags).
    AMD's AVX-512 BF16 trains this net slower in bfloat16 than in float32 (benchmarks/training_speed.py)."""
    import keras
    device = keras.distribution.list_devices()[0]  # Keras lists accelerators first, if any
    if device.startswith("gpu"):
        return gpu_compute_capability() >= (8, 0)
    if not device.startswith("cpu"):
        return True
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in cpuinfo or ("avx512_bf16" in cpuinfo and "GenuineIntel" in cpuinfo)


def check_writable(model_out):
    """Fail now, not after an hour of training, if the model cannot be saved where asked."""
    folder = model_out.resolve().parent
    if not folder.is_dir():
        raise SystemExit(f"error: output folder {folder} does not exist")
    try:
        # Trying is the only sure test: permissions, read-only mounts and quotas all show up here.
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise SystemExit(f"error: cannot write in output folder {folder}: {error.strerror}") from None


def export(best_checkpoint, model_out, class_names, held_out=None, batchnorm_images=None):
    """Rebuild the best checkpoint in float32 (portable to any CPU), re-estimate its BatchNorm statistics on
    batchnorm_images if given, and save it with its class names (and held-out fold); a save that fails (a full
    disk) ends the run with one line, the checkpoint and any earlier model left as they were."""
    import keras

    from emotion.model import build_little_vgg, save_model
    trained = keras.saving.load_model(best_checkpoint, compile=False)
    keras.mixed_precision.set_global_policy("float32")
    model = build_little_vgg(len(class_names))
    weights = trained.get_weights()
    # Outputs of --extra-classes are dropped: the softmax over the rest is then the answer given that the face
    # shows one of class_names.
    weights[-2], weights[-1] = weights[-2][:, :len(class_names)], weights[-1][:len(class_names)]
    model.set_weights(weights)
    if batchnorm_images is not None:
        from emotion.train import reestimate_batch_norm
        reestimate_batch_norm(model, batchnorm_images)
    try:
        save_model(model, model_out, class_names, held_out)
    except OSError as error:
        raise SystemExit(f"error: cannot save {model_out}: {error.strerror or error}; the best weights are still "
                         f"in {best_checkpoint}") from None
    return model


def report(model, val, class_names, model_out, val_fer2013=None):
    """Score the saved model on the validation images, write its report beside it and print the figures.

    val_fer2013: when val is labelled by FER+'s majority, the validation images with their FER2013 labels, scored
    beside it (the report's "fer2013_labels")."""
    from emotion.report import evaluate, write_report
    metrics = evaluate(model, val.images, val.labels, class_names)
    scored = [("", metrics)]
    if val_fer2013 is not None:
        metrics["labels"] = "FER+ majority"
        metrics["fer2013_labels"] = evaluate(model, val_fer2013.images, val_fer2013.labels, class_names)
        scored = [("FER+ majority labels: ", metrics), ("FER2013 labels: ", metrics["fer2013_labels"])]
    paths = write_report(metrics, model_out)
    print(f"saved {model_out}")
    for heading, figures in scored:
        print(f"{heading}validation accuracy {figures['accuracy']:.1%} "
              f"({figures['flip_average']['accuracy']:.1%} with mirror averaging, {figures['images']} images)")
        for name, scores in figures["per_class"].items():
            print(f"  {name:>9}: recall {scores['recall']:.1%}  precision {scores['precision']:.1%}")
    print(f"report: {paths['metrics']}, {paths['curves']}, {paths['confusion']}")


def convert(path, model_out, class_names):
    """Save the model at path as model_out, with class_names written in (see --convert)."""
    from emotion.model import ModelFileError, load_model, save_model
    try:
        model, _ = load_model(path)
    except ModelFileError as error:
        raise SystemExit(f"error: --convert: {error}") from None
    if model.output_shape[-1] != len(class_names):
        raise SystemExit(f"error: --convert {path} has {model.output_shape[-1]} outputs, not one for each of the "
                         f"{len(class_names)} --classes")
    try:
        save_model(model, model_out, class_names)
    except OSError as error:
        raise SystemExit(f"error: cannot save {model_out}: {error.strerror or error}") from None
    print(f"saved {model_out}: {path} with the class names {','.join(class_names)}")
    return 0


def remove_checkpoints(paths):
    """Once the model is saved: remove the best checkpoint, a half-written one that a kill mid-save left (a later
    best would have replaced it), and the backup of the last epoch."""
    for checkpoint in (paths["best"], paths["best_saving"]):
        checkpoint.unlink(missing_ok=True)
    shutil.rmtree(paths["backup"], ignore_errors=True)


def trained_model(path, class_names, option):
    """The trained model at path, refused (naming option) unless it was trained on class_names in that order."""
    from emotion.model import ModelFileError, load_model
    try:
        trained, trained_names = load_model(path)
    except ModelFileError as error:
        raise SystemExit(f"error: {option}: {error}") from None
    if trained_names != class_names:
        raise SystemExit(f"error: {option} {path} was trained on {','.join(trained_names)}, "
                         f"not {','.join(class_names)}")
    return trained


def held_out_fold(teacher_path):
    """The fold a --teacher model was trained without (emotion.model.read_held_out), or None."""
    from emotion.model import read_held_out
    try:
        return read_held_out(teacher_path)
    except ValueError as error:
        raise SystemExit(f"error: --teacher {teacher_path}: {error}") from None


@contextlib.contextmanager
def stopped_by_signals():
    """Within: Ctrl-C, `kill -INT` and `kill` (SIGTERM) all stop the run as Ctrl-C does, also a run started in the
    background (`nohup ... &`), where the shell has made it ignore SIGINT."""
    previous = {number: signal.signal(number, signal.default_int_handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def read_data(args):
    """(training split, its targets, validation split, the validation images with their folder labels or None where
    those are val) as the options say, its counts printed; one error line for a dataset that cannot be used."""
    from emotion.data import DatasetError, load_training_data
    try:
        data = load_training_data(args.train_dir, args.val_dir, args.classes, args.extra_classes, args.csv,
                                  args.votes, args.val_votes, args.ferplus, args.max_per_class)
    except DatasetError as error:
        raise SystemExit(f"error: {error}") from None
    if data.votes_left_out is not None:
        read = len(data.train.labels) + data.votes_left_out
        print(f"FER+ votes: training on {len(data.train.labels)} of {read} images; the other {data.votes_left_out} "
              f"have most votes outside {','.join(data.learnt)} (or for not a face)")
    for name, split in (("training", data.train), ("validation", data.val)):
        counts = ", ".join(f"{label} {count}" for label, count in split.counts().items())
        print(f"{name}: {len(split.labels)} images ({counts})")
        if split.skipped:
            examples = ", ".join(str(path) for path in split.skipped[:3])
            print(f"  skipped {len(split.skipped)} unreadable file(s) or row(s), e.g. {examples}")
    return data


def reestimate_batchnorm(args, model_out):
    """--reestimate-batchnorm: the trained model's BatchNorm statistics re-estimated on the training images, saved as
    model_out with its report."""
    # A model of other classes is refused now, before the images are read.
    trained_model(args.reestimate_batchnorm, args.classes, "--reestimate-batchnorm")
    if held_out_fold(args.reestimate_batchnorm):
        raise SystemExit(f"error: --reestimate-batchnorm {args.reestimate_batchnorm} was trained without a fold of its "
                         "images: retrain it with --hold-out instead")
    data = read_data(args)
    report(export(args.reestimate_batchnorm, model_out, args.classes, batchnorm_images=data.train.images), data.val,
           args.classes, model_out, data.val_fer2013)
    return 0


def distilled_and_held_out(args, train, targets, teachers, folds):
    """(training split, targets) after the --teacher models' answers (each with the fold it held out, or None) are
    blended in and --hold-out's fold is left out."""
    from emotion.data import check_every_class_present, fold_mask
    from emotion.train import teacher_targets
    if teachers:
        for path, fold in zip(args.teacher, folds):
            if fold and fold["images"] != len(train.labels):
                raise SystemExit(f"error: --teacher {path} held out a fold of {fold['images']} training images, "
                                 f"not of these {len(train.labels)}: give the training images it was made with")
        try:
            targets = teacher_targets(teachers, train.images, targets, len(args.classes), args.teacher_weight,
                                      folds)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    if args.hold_out:
        args.hold_out["images"] = len(train.labels)
        kept = ~fold_mask(len(train.labels), args.hold_out["fold"], args.hold_out["folds"])
        train, targets = train.select(kept), targets[kept]
        check_every_class_present(train, f"the training images without fold {args.hold_out['fold']}")
        print(f"held out fold {args.hold_out['fold']} of {args.hold_out['folds']}: training on {len(train.labels)} "
              f"of {args.hold_out['images']} images")
    return train, targets


def fit(args, train, targets, val, learnt, paths, initial_weights):
    """model.fit with the options' precision, strategy, batches, schedule and callbacks; True if it ran to its
    end, False if interrupted (Ctrl-C, kill)."""
    import keras

    from emotion.batches import FaceBatches, make_dataset
    from emotion.data import class_weights
    from emotion.model import build_little_vgg
    from emotion.train import (
        ThroughputLogger,
        best_checkpoint,
        best_logged,
        choose_strategy,
        compile_model,
        time_input_pipeline,
    )
    on_tensorflow = keras.backend.backend() == "tensorflow"
    precision = args.precision
    if precision == "auto":
        precision = "mixed_bfloat16" if hardware_has_bfloat16() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    # tf.data and tf.distribute on TensorFlow; the other backends (JAX on a GPU machine without TensorFlow) train
    # on one device from a PyDataset.
    strategy = choose_strategy() if on_tensorflow else None
    replicas = strategy.num_replicas_in_sync if strategy else 1
    batch_size = args.batch_size * replicas
    if on_tensorflow:
        train_data = make_dataset(train.images, targets, len(learnt), batch_size, training=True,
                                  seed=args.seed, camera_artefacts=args.camera_artefacts, mixup=args.mixup)
        val_data = make_dataset(val.images, val.labels, len(learnt), batch_size)
    else:
        train_data = FaceBatches(train.images, targets, len(learnt), batch_size, training=True, seed=args.seed,
                                 mixup=args.mixup, workers=4)
        val_data = FaceBatches(val.images, val.labels, len(learnt), batch_size)
    steps_per_epoch = -(-len(train.labels) // batch_size)
    pipeline_ms = time_input_pipeline(train_data)
    print(f"{keras.backend.backend()}, precision {precision}, {replicas} replica(s), batch {batch_size}, "
          f"input pipeline {pipeline_ms:.1f} ms/batch")
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = compile_model(build_little_vgg(len(learnt)), args.learning_rate, steps_per_epoch,
                              args.epochs, args.label_smoothing, args.weight_averaging, args.optimizer)
    if initial_weights:
        model.set_weights(initial_weights)
    callbacks = [
        ThroughputLogger(len(train.labels), steps_per_epoch, pipeline_ms),
        keras.callbacks.BackupAndRestore(str(paths["backup"]), double_checkpoint=True),
        *best_checkpoint(paths["best"], paths["best_saving"], best_logged(paths["history"]) if args.resume else None),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=args.patience),
        keras.callbacks.CSVLogger(str(paths["history"]), append=args.resume),
        keras.callbacks.TerminateOnNaN(),
    ]
    try:
        with stopped_by_signals():
            model.fit(train_data, validation_data=val_data, epochs=args.epochs, callbacks=callbacks,
                      class_weight=class_weights(train.labels, len(learnt), args.class_weight_power))
    except KeyboardInterrupt:
        return False
    return True


def main(argv=None):
    args = parse_args(argv)
    model_out = Path(args.model_out)
    check_writable(model_out)
    if args.convert:
        load_quietly()
        return convert(args.convert, model_out, args.classes)
    from emotion.report import report_paths
    paths = report_paths(model_out)
    if paths["backup"].exists() and not args.resume:
        raise SystemExit(f"error: an interrupted run left {paths['backup']}: add --resume to continue it, "
                         "or delete that folder to start over")
    if args.resume and not paths["backup"].exists():
        print(f"notice: nothing to resume in {paths['backup']}; starting a new run")

    load_quietly()  # TensorFlow takes seconds to load: the checks above answer before it
    import keras
    if args.camera_artefacts and keras.backend.backend() != "tensorflow":
        raise SystemExit(f"error: --camera-artefacts needs the TensorFlow backend, not {keras.backend.backend()}")
    if args.reestimate_batchnorm:
        return reestimate_batchnorm(args, model_out)
    initial_weights = None
    if args.init_from:
        initial_weights = trained_model(args.init_from, args.classes, "--init-from").get_weights()
    teachers = [trained_model(path, args.classes, "--teacher") for path in args.teacher or ()]
    teacher_folds = [held_out_fold(path) for path in args.teacher or ()]

    keras.utils.set_random_seed(args.seed)
    data = read_data(args)
    train, targets = distilled_and_held_out(args, data.train, data.targets, teachers, teacher_folds)
    if not fit(args, train, targets, data.val, data.learnt, paths, initial_weights):
        print(f"\ninterrupted: the last completed epoch is in {paths['backup']} (continue with --resume)")
        if paths["best"].exists():
            export(paths["best"], model_out, args.classes, args.hold_out)
            print(f"best model so far saved to {model_out} (with BatchNorm statistics as training left them: "
                  "a finished run re-estimates them)")
        return 130
    if not paths["best"].exists():
        raise SystemExit("error: training produced no checkpoint (did the loss become NaN?)")
    model = export(paths["best"], model_out, args.classes, args.hold_out, batchnorm_images=train.images)
    remove_checkpoints(paths)
    report(model, data.val, args.classes, model_out, data.val_fer2013)
    return 0


if __name__ == "__main__":
    sys.exit(main())
