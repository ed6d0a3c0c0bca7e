"""``alexnet-lab train``: a whole training run from the command line, on one device or on many.

Examples::

    alexnet-lab train --framework torch --dataset cifar10 --out runs/cifar10-torch
    alexnet-lab train --framework keras --dataset fashion_mnist --profile smoke --out runs/smoke
    alexnet-lab train --framework torch --dataset cifar10 --out runs/cifar10-torch --resume   # after a crash
    torchrun --nproc_per_node=4 -m alexnet_lab train --framework torch --dataset cifar10 --out runs/ddp

The settings are the notebooks': the run profile (``--profile``, else ``$ALEXNET_LAB_PROFILE``,
else ``laptop``) gives the data sizes, epochs and batch size of the notebook that trains on the
same data (:mod:`alexnet_lab.core.profiles`); SGD with momentum 0.9, learning rate 0.01, weight decay
5e-4 and a cosine schedule (notebook 05's settings until December 2026: the notebook now trains the
``compact`` preset with a one-cycle recipe, which this command does not offer yet); random crops (padding 1/8) and flips. Every
setting can be changed with an option (``alexnet-lab train --help``).

The run folder (``--out``: config.json, history.json, checkpoints/, metrics.json, written by one
process only) and the checks before a run starts or resumes are in :mod:`alexnet_lab.cli.runs`;
this module parses the options and trains, with PyTorch (:mod:`alexnet_lab.torch.distributed` under
torchrun) or Keras (:mod:`alexnet_lab.keras.distributed`'s ``tf.distribute`` strategies).

``--batch-size`` is the *global* batch: with N processes (or GPUs) each takes ``batch / N`` images
of every batch, so the same command trains the same way on any number of devices (see
``docs/distributed.md``). Training batches are always full (the last, smaller batch of each epoch
is left out) so that they split evenly.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alexnet_lab.cli.runs import METRICS_NAME, HistoryFile, RunFolder, TrainConfig, final_metrics
from alexnet_lab.core import cluster

__all__ = ["register_cli", "TrainResult", "resolve", "load_data", "train", "DATASETS"]

DATASETS = ("fashion_mnist", "cifar10", "random")
PRECISIONS = {"auto": "auto", "on": True, "off": False, "bf16": "bf16", "fp16": "fp16"}
SCHEDULES = ("none", "plateau", "cosine", "step")
# The preset each data set's notebook trains, and the notebook (profiles topic) whose sizes it uses.
DEFAULT_PRESETS = {"fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "random": "cifar10", "folder": "classic"}
TOPICS = {"fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "random": None, "folder": "image_folder"}


@dataclass
class TrainResult:
    """What :func:`train` returns: the final metrics, the history and the trained model (and Keras' strategy).

    ``is_chief``: whether this process is the one that logs and writes (PyTorch process 0, the Keras chief).
    """

    metrics: dict
    history: Any
    model: Any
    strategy: Any = None
    is_chief: bool = True


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value}")
    return value


def register_cli(subparsers) -> None:
    """Add the ``train`` subcommand to the ``alexnet-lab`` command."""
    from alexnet_lab.core.architecture import preset_names
    from alexnet_lab.core.profiles import ENV_VAR, names

    p = subparsers.add_parser(
        "train", help="train a model from the command line (one device, or several with torchrun / tf.distribute)",
        description="Train AlexNet (or LeNet-5) with the notebooks' settings, log to a run folder, resume after a "
                    "crash. Under torchrun it trains with DistributedDataParallel; in Keras with tf.distribute. "
                    "See docs/distributed.md.")
    p.add_argument("--framework", required=True, choices=["torch", "keras"])
    p.add_argument("--dataset", required=True, metavar="NAME|FOLDER",
                   help=f"{', '.join(DATASETS)}, or a folder of images with one sub-folder per class")
    p.add_argument("--preset", choices=preset_names() + ["lenet5"],
                   help="the model; default: the one the data set's notebook trains (fashion_mnist, cifar10, "
                        "classic for folders)")
    p.add_argument("--out", required=True, metavar="DIR", help="the run folder (config, history, checkpoints, metrics)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (starts it if there is none yet)")
    p.add_argument("--profile", choices=names(), help=f"data sizes and epochs; default: ${ENV_VAR} or laptop")
    g = p.add_argument_group("training (defaults: the profile's, and notebook 05's optimizer)")
    g.add_argument("--epochs", type=_positive_int)
    g.add_argument("--batch-size", type=_positive_int, help="the GLOBAL batch, split over all processes/GPUs")
    g.add_argument("--lr", type=_positive_float, help="learning rate (default 0.01) for the global batch")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    g.add_argument("--max-batches", type=_positive_int, help="at most this many batches per epoch (smoke runs)")
    g.add_argument("--max-eval-batches", type=_positive_int, help="at most this many test batches")
    g.add_argument("--mixed-precision", choices=list(PRECISIONS), default="auto")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="allow non-deterministic (faster) GPU kernels")
    d = p.add_argument_group("data and model")
    d.add_argument("--per-class", type=_positive_int, help="training images per class")
    d.add_argument("--test-per-class", type=_positive_int, help="test images per class")
    d.add_argument("--val-fraction", type=_fraction, default=0.1, help="share of the training images held out "
                   "for validation (0: none)")
    d.add_argument("--image-size", type=_positive_int, help="the size the model sees (images are resized on the way)")
    d.add_argument("--resize-to", type=_positive_int, help="resize inside the model (AlexNet presets)")
    d.add_argument("--norm", choices=["none", "lrn", "batch"])
    d.add_argument("--dropout", type=float)
    d.add_argument("--no-augment", dest="augment", action="store_false", help="no random crops and flips")
    e = p.add_argument_group("devices")
    e.add_argument("--device", help="PyTorch: cuda, cpu or mps (default: the best there is)")
    e.add_argument("--workers", type=int, default=0, help="PyTorch: DataLoader worker processes")
    e.add_argument("--strategy", choices=["auto", "none", "mirrored", "multiworker"],
                   help="Keras: tf.distribute strategy (default auto: multiworker with TF_CONFIG, mirrored with "
                        "several GPUs)")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when the output is a terminal)")
    p.set_defaults(func=_run)


def _dataset_kind(dataset: str) -> str:
    """One of :data:`DATASETS`, or ``"folder"``; a name or path that is neither raises an error saying so."""
    from alexnet_lab.data import DataNotFoundError

    if dataset in DATASETS:
        return dataset
    path = Path(dataset)
    if path.is_dir():
        return "folder"
    give = f"Give one of {', '.join(DATASETS)}, or the path of a folder with one sub-folder per class."
    if path.exists():
        raise ValueError(f"--dataset {dataset} is a file, not a folder of images. {give}")
    if any(sep and sep in dataset for sep in (os.sep, os.altsep)):
        raise DataNotFoundError(f"--dataset {dataset}: no such folder. {give}")
    raise ValueError(f"--dataset {dataset!r} is neither one of {', '.join(DATASETS)} nor a folder of images. "
                     "Give one of those names, or the path of a folder with one sub-folder per class.")


def resolve(args: argparse.Namespace) -> TrainConfig:
    """The full settings: the options given, the rest from the run profile and the notebooks' defaults."""
    from alexnet_lab.core import profiles

    kind = _dataset_kind(args.dataset)
    preset = args.preset or DEFAULT_PRESETS[kind]
    profile = profiles.get(args.profile) if args.profile else profiles.current()
    topic = "lenet5" if preset == "lenet5" else TOPICS[kind]
    if topic is not None:
        profile = profile.for_notebook(topic)
    if preset == "lenet5":
        given = [f"--{n.replace('_', '-')}" for n in ("norm", "dropout", "resize_to") if getattr(args, n) is not None]
        if given:
            raise ValueError(f"LeNet-5 has no {', '.join(given)} option; leave it out or train an AlexNet preset.")
    if args.framework == "torch" and args.strategy is not None:
        raise ValueError("--strategy is for --framework keras; PyTorch runs on several GPUs with torchrun "
                         "(see docs/distributed.md).")
    if args.framework == "keras" and (args.device is not None or args.workers):
        raise ValueError("--device and --workers are for --framework torch; Keras uses every GPU TensorFlow sees "
                         "(choose with CUDA_VISIBLE_DEVICES) and its own tf.data threads.")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout is a probability of dropping a unit: 0 <= dropout < 1, got {args.dropout}.")
    return TrainConfig(
        framework=args.framework, dataset=args.dataset, preset=preset, out=str(args.out), resume=args.resume,
        profile=profile.name, epochs=args.epochs or profile.epochs, batch_size=args.batch_size or profile.batch_size,
        lr=args.lr or 0.01, momentum=args.momentum, weight_decay=args.weight_decay, optimizer=args.optimizer,
        schedule=None if args.schedule == "none" else args.schedule,
        per_class=args.per_class or profile.per_class, test_per_class=args.test_per_class or profile.test_per_class,
        val_fraction=args.val_fraction, image_size=args.image_size, resize_to=args.resize_to, norm=args.norm,
        dropout=args.dropout, augment=args.augment, seed=args.seed, mixed_precision=args.mixed_precision,
        max_batches=args.max_batches or profile.max_train_batches,
        max_eval_batches=args.max_eval_batches or profile.max_eval_batches, deterministic=args.deterministic,
        device=args.device, workers=args.workers, strategy=args.strategy or "auto", progress=args.progress)


# ---------------------------------------------------------------------------
# Data and preprocessing
# ---------------------------------------------------------------------------
def load_data(cfg: TrainConfig):
    """``(train, val, test)`` ImageSets for ``cfg`` (``val`` is None when ``val_fraction`` is 0).

    The test set is put in a fixed random order, so that the first batches (all that a smoke run
    evaluates) hold every class, as in the notebooks.
    """
    import numpy as np

    from alexnet_lab import data
    from alexnet_lab.core import architecture as arch

    kind = _dataset_kind(cfg.dataset)
    if kind == "fashion_mnist":
        train, test = data.load_fashion_mnist(per_class=cfg.per_class, test_per_class=cfg.test_per_class,
                                              seed=cfg.seed)
    elif kind == "cifar10":
        train, test = data.load_cifar10(per_class=cfg.per_class, test_per_class=cfg.test_per_class, seed=cfg.seed)
    elif kind == "random":
        if cfg.preset == "lenet5":
            shape = (cfg.image_size or 28, cfg.image_size or 28, 1)
        else:
            p = arch.get_preset(cfg.preset)
            shape = (cfg.image_size or p.image_size, cfg.image_size or p.image_size, p.in_channels)
        train, test = data.random_dataset(n_train=10 * (cfg.per_class or 100), n_test=10 * (cfg.test_per_class or 20),
                                          image_shape=shape, num_classes=10, seed=cfg.seed)
    else:
        size = cfg.image_size or (28 if cfg.preset == "lenet5" else arch.get_preset(cfg.preset).image_size)
        train, test = data.load_image_folder(cfg.dataset, image_size=size, per_class=cfg.per_class, seed=cfg.seed)
        if cfg.test_per_class is not None:
            test = data.per_class_subset(test, cfg.test_per_class, seed=cfg.seed)
    val = None
    if cfg.val_fraction > 0:
        train, val = data.validation_split(train, cfg.val_fraction, seed=cfg.seed)
        if len(val) == 0:
            raise ValueError(f"--val-fraction {cfg.val_fraction} of {len(train)} training images leaves no "
                             "validation images: use more images (--per-class) or --val-fraction 0.")
    test = test.subset(np.random.default_rng(cfg.seed).permutation(len(test)))
    return train, val, test


def _preprocessing(cfg: TrainConfig, train):
    """The training and test preprocessing: the training set's statistics, random crops and flips (notebook 05)."""
    from alexnet_lab.data import preprocessing

    stored = train.shape[0]
    size = cfg.image_size if cfg.image_size not in (None, stored) else None
    train_pre = preprocessing.Preprocess.for_training(train, image_size=size, flip=True, lighting_std=0.0)
    test_pre = train_pre.without_augmentation()
    return (train_pre if cfg.augment else test_pre), test_pre


def _model_options(cfg: TrainConfig, train) -> dict:
    h, _, c = train.shape
    options = {"num_classes": train.num_classes, "in_channels": c, "image_size": cfg.image_size or h}
    if cfg.preset != "lenet5":
        options.update({k: getattr(cfg, k) for k in ("norm", "dropout", "resize_to") if getattr(cfg, k) is not None})
    return options


def _build_model(models, cfg: TrainConfig, train):
    """The model from ``models`` (keras_models or torch_models) for ``cfg`` and the data's classes and shape."""
    options = _model_options(cfg, train)
    return models.lenet5(**options) if cfg.preset == "lenet5" else models.alexnet(cfg.preset, **options)


# ---------------------------------------------------------------------------
# What the command prints
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_unless(speaks: bool):
    """Silence this process's printed output unless ``speaks``: in a distributed run only one process logs."""
    if speaks:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def _show_progress(cfg: TrainConfig, speaks: bool) -> bool:
    if not speaks:
        return False
    return sys.stderr.isatty() if cfg.progress is None else cfg.progress


def _start(cfg: TrainConfig, run: RunFolder, train, val, test, facts: dict, strategy: str, **more) -> None:
    """Say what the run does, and write its ``config.json`` (the chief alone calls this)."""
    h, w, c = train.shape
    print(f"alexnet-lab train: {cfg.framework}, preset {cfg.preset} on {cfg.dataset}, profile {cfg.profile!r}")
    print(f"  run folder: {run.path} ({'resuming' if run.resuming(cfg) else 'new run'})")
    print(f"  data: {len(train):,} training, {len(val) if val is not None else 0:,} validation, {len(test):,} test "
          f"images ({h}×{w}×{c}, {train.num_classes} classes)")
    print(f"  {cfg.epochs} epochs; global batch {cfg.batch_size} = {facts['processes']} × "
          f"{facts['per_process_batch_size']}; lr {cfg.lr:g}, {cfg.optimizer}, schedule {cfg.schedule}")
    print(f"  {strategy}")
    images = {"train": len(train), "val": len(val) if val is not None else 0, "test": len(test)}
    run.write_config(cfg, **facts, **more, images=images)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
def _train_torch(cfg: TrainConfig, run: RunFolder, started: float) -> TrainResult:
    from alexnet_lab.torch import distributed

    ctx = distributed.init(cfg.device)
    try:
        with _quiet_unless(ctx.is_chief):
            return _torch_run(cfg, run, started, ctx)
    finally:
        distributed.shutdown()


def _torch_run(cfg: TrainConfig, run: RunFolder, started: float, ctx) -> TrainResult:
    import torch

    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.torch import distributed
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import precision as torch_precision
    from alexnet_lab.torch import training as torch_training

    per_process = cluster.per_process_batch_size(cfg.batch_size, ctx.world_size)
    problem = distributed.broadcast_object(ctx, run.problem(cfg) if ctx.is_chief else None)
    if problem:
        raise ValueError(problem)
    # Each process its own seed: different dropout masks; DDP gives all the same starting weights.
    seed_everything(cfg.seed + ctx.rank, deterministic=cfg.deterministic, frameworks=("torch",))
    with distributed.main_process_first(ctx):  # a download or unpacking happens once
        train, val, test = load_data(cfg)
    train_pre, test_pre = _preprocessing(cfg, train)

    def batches(images, pre, training=False):  # this process's part of every global batch
        return torch_pipeline.make_batches(images, pre, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=training,
                                           drop_last=training, num_workers=cfg.workers, rank=ctx.rank,
                                           world_size=ctx.world_size)

    train_loader = batches(train, train_pre, training=True)
    val_loader = batches(val, test_pre) if val is not None else None
    test_loader = batches(test, test_pre)

    model = _build_model(torch_models, cfg, train)
    precision = torch_precision.choose_precision(ctx.device, PRECISIONS[cfg.mixed_precision])
    channels_last, _ = torch_precision.choose_channels_last(ctx.device, "auto", precision)
    # The memory format is set before DDP wraps the model (fit then finds it already set).
    model.to(ctx.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    wrapped = distributed.wrap_model(model, ctx)

    facts = {"processes": ctx.world_size, "backend": ctx.backend, "global_batch_size": cfg.batch_size,
             "per_process_batch_size": per_process}
    if ctx.is_chief:
        _start(cfg, run, train, val, test, facts, distributed.describe_strategy(ctx), device=str(ctx.device))
    if cfg.resume:  # every process must resume from the same checkpoint
        seen = distributed.gather_objects(ctx, run.fingerprint("torch"))
        if len(set(seen)) > 1:
            raise ValueError(f"The processes see different checkpoints in {run.checkpoints} ({seen}): on several "
                             "machines --out must be a folder they all share (e.g. on a network file system).")
    distributed.barrier(ctx)

    history = torch_training.fit(
        wrapped, train_loader, val_loader, epochs=cfg.epochs, lr=cfg.lr, optimizer=cfg.optimizer,
        momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
        checkpoint_dir=run.checkpoints, resume=cfg.resume, mixed_precision=PRECISIONS[cfg.mixed_precision],
        channels_last="auto", device=ctx.device, max_batches=cfg.max_batches,
        label=f"PyTorch {cfg.preset}", progress=_show_progress(cfg, ctx.is_chief), verbose=int(ctx.is_chief),
        live=HistoryFile(run.history, facts) if ctx.is_chief else None)
    test_metrics = torch_training.evaluate(model, test_loader, max_batches=cfg.max_eval_batches,
                                           mixed_precision=PRECISIONS[cfg.mixed_precision])
    metrics = final_metrics(cfg, history, test_metrics, len(test), started, facts)
    if ctx.is_chief:
        run.finish(history, metrics, facts)
    return TrainResult(metrics, history, model, is_chief=ctx.is_chief)


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------
def _train_keras(cfg: TrainConfig, run: RunFolder, started: float) -> TrainResult:
    from alexnet_lab.keras import distributed

    strategy = distributed.tf_strategy(cfg.strategy)  # first: before any other TensorFlow work
    chief = distributed.is_chief()
    with _quiet_unless(chief):
        return _keras_run(cfg, run, started, strategy, chief)


def _keras_run(cfg: TrainConfig, run: RunFolder, started: float, strategy, chief: bool) -> TrainResult:
    import keras
    import tensorflow as tf

    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.keras import distributed
    from alexnet_lab.keras import models as keras_models
    from alexnet_lab.keras import pipeline as keras_pipeline
    from alexnet_lab.keras import precision as keras_precision
    from alexnet_lab.keras import training as keras_training

    replicas = strategy.num_replicas_in_sync
    per_replica = cluster.per_process_batch_size(cfg.batch_size, replicas)
    if chief:  # the other workers wait for the chief (a failed check stops it, and the run with it)
        problem = run.problem(cfg)
        if problem:
            raise ValueError(problem)
    seed_everything(cfg.seed, deterministic=cfg.deterministic, frameworks=("tensorflow",))
    train, val, test = load_data(cfg)
    train_pre, test_pre = _preprocessing(cfg, train)

    def batches(images, pre, training=False):  # of the GLOBAL size: tf.distribute splits each over the replicas
        dataset = keras_pipeline.make_batches(images, pre, batch_size=cfg.batch_size, seed=cfg.seed,
                                              shuffle=training, drop_last=training)
        return distributed.shard_by_data(dataset)

    train_ds = batches(train, train_pre, training=True)
    val_ds = batches(val, test_pre) if val is not None else None
    test_ds = batches(test, test_pre)

    facts = {"processes": replicas, "strategy": distributed.describe_strategy(strategy),
             "global_batch_size": cfg.batch_size, "per_process_batch_size": per_replica}
    previous_policy = keras.mixed_precision.global_policy()
    try:
        keras_precision.use_mixed_precision(PRECISIONS[cfg.mixed_precision], verbose=0)
        with strategy.scope():  # the model and its optimizer must be created inside the scope
            model = _build_model(keras_models, cfg, train)
            if chief:
                _start(cfg, run, train, val, test, facts, facts["strategy"])
            history = keras_training.fit(
                model, train_ds, val_ds, epochs=cfg.epochs, lr=cfg.lr, optimizer=cfg.optimizer,
                momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                checkpoint_dir=run.checkpoints, resume=cfg.resume, mixed_precision=PRECISIONS[cfg.mixed_precision],
                max_batches=cfg.max_batches, label=f"Keras {cfg.preset}", progress=_show_progress(cfg, chief),
                verbose=int(chief), live=HistoryFile(run.history, facts) if chief else None)
        tested = model
        if isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
            # Predicting batch by batch under a strategy would run every batch on every replica: test a
            # plain copy of the trained model instead (every worker gets the same numbers).
            tested = _build_model(keras_models, cfg, train)
            tested.set_weights(model.get_weights())
        test_metrics = keras_training.evaluate(tested, test_ds, max_batches=cfg.max_eval_batches)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    metrics = final_metrics(cfg, history, test_metrics, len(test), started, facts)
    if chief:
        run.finish(history, metrics, facts)
    return TrainResult(metrics, history, model, strategy, is_chief=chief)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------
def train(cfg: TrainConfig) -> TrainResult:
    """Run the training ``cfg`` describes; :mod:`alexnet_lab.cli.runs` says what it writes."""
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run = RunFolder(cfg.out)
    if cfg.framework == "torch":
        return _train_torch(cfg, run, started)
    return _train_keras(cfg, run, started)


def _run(args: argparse.Namespace) -> int:
    cfg = resolve(args)
    result = train(cfg)
    if result.is_chief:
        m = result.metrics
        val = "" if m["val_accuracy"] is None else f"validation accuracy {m['val_accuracy']:.1%}, "
        print(f"alexnet-lab train: done. {val}test accuracy {m['test_accuracy']:.1%} on {m['test_images']:,} images; "
              f"{m['wall_time_s']:.1f} s. Results in {Path(cfg.out) / METRICS_NAME}")
    return 0
