"""Training and evaluating the Keras models: :func:`fit`, :func:`evaluate`, :func:`predict`.

Read this file beside :mod:`alexnet_lab.torch.training`: both ``fit`` functions take the
same arguments and return the same framework-free :class:`~alexnet_lab.core.history.History`,
so one plotting function serves both. In PyTorch we write the training loop; in Keras
``model.fit`` runs it, and each extra -- learning-rate schedule, early stopping,
checkpoints, TensorBoard -- is a *callback* that ``model.fit`` calls after every epoch (except
the one-cycle schedule, stepped after every batch: the optimizer evaluates it itself)::

    model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9, l2=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=10,
              callbacks=[keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.1, patience=2)])

The optimizer (with the paper's weight decay), the schedule and early stopping come from
:mod:`alexnet_lab.keras.optim`, the checkpoints from :mod:`alexnet_lab.keras.checkpoints`, the
dtype policy and XLA from :mod:`alexnet_lab.keras.precision`. Mixed precision in Keras is a
property of the *model*, chosen when it is built: call
:func:`alexnet_lab.keras.precision.use_mixed_precision` before building it.

Example::

    from alexnet_lab.keras import models as keras_models, training as keras_training
    model = keras_models.alexnet("cifar10")
    history = keras_training.fit(model, train_batches, val_batches, epochs=10, schedule="plateau")
    print(keras_training.evaluate(model, test_batches))
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from alexnet_lab.core import seeding  # noqa: E402
from alexnet_lab.core.history import (  # noqa: E402
    QUALITY_METRICS,
    History,
    format_epoch,
    format_metrics,
    format_progress,
)
from alexnet_lab.keras import batches, checkpoints, distributed, optim  # noqa: E402
from alexnet_lab.keras import precision as keras_precision  # noqa: E402

__all__ = ["fit", "evaluate", "predict", "ImageCount"]


@keras.saving.register_keras_serializable(package="alexnet_lab")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits and integer labels, with label smoothing (Keras' sparse loss has none).

    The target puts ``1 - label_smoothing`` on the right class and ``label_smoothing / C`` on every class,
    as ``torch.nn.functional.cross_entropy(..., label_smoothing=...)`` does.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="alexnet_lab")
class ImageCount(keras.metrics.Metric):
    """Counts the images of the current epoch, so that images/s is exact even when the last batch is smaller."""

    def __init__(self, name: str = "images", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count.assign_add(ops.cast(ops.shape(y_true)[0], self.count.dtype))

    def result(self):
        # A copy: the variable itself would be read later, after validation has reset and reused it.
        return ops.copy(self.count)

    def reset_state(self):
        self.count.assign(0.0)


def _num_classes(model: keras.Model) -> int | None:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return int(shape[-1]) if shape is not None and shape[-1] is not None else None


# ---------------------------------------------------------------------------
# Callbacks: history and progress (the checkpoint's are in alexnet_lab.keras.checkpoints)
# ---------------------------------------------------------------------------
_PLAIN_LOSS = "cross_entropy"  # the metric that gives the unsmoothed validation loss with label smoothing


def _lr(model: keras.Model) -> float:
    return float(ops.convert_to_numpy(model.optimizer.learning_rate))


class _Recorder(keras.callbacks.Callback):
    """Fills the framework-free History, with the learning rate of the epoch's first batch and images/s.

    With label smoothing, ``val_loss`` is the plain cross-entropy (``val_cross_entropy``), as in PyTorch.
    """

    def __init__(self, history: History):
        super().__init__()
        self.history = history

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.train_end = time.perf_counter()
        self.validating = False
        self.lr = None

    def on_train_batch_begin(self, batch, logs=None):
        # After the per-epoch schedules set the epoch's rate, before the first update (a one-cycle
        # schedule reads the optimizer's step count, which each update advances).
        if self.lr is None:
            self.lr = _lr(self.model)

    def on_test_begin(self, logs=None):
        self.train_end, self.validating = time.perf_counter(), True  # validation starts: training time ends

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        train_seconds = (self.train_end if self.validating else now) - self.start
        values = {k: float(logs[k]) for k in QUALITY_METRICS if k in logs}
        if f"val_{_PLAIN_LOSS}" in logs:  # label smoothing: the compiled loss is smoothed, the metric is not
            values["val_loss"] = float(logs[f"val_{_PLAIN_LOSS}"])
        values.update(lr=self.lr if self.lr is not None else _lr(self.model),
                      images_per_s=float(logs["images"]) / train_seconds, epoch_time_s=now - self.start)
        self.history.append(**values)


class _Progress(keras.callbacks.Callback):
    """tqdm bars like the PyTorch side's (epochs; batches with loss, accuracy, images/s), and one line per epoch."""

    def __init__(self, *, epochs, initial_epoch, steps, label, progress, verbose, history, live):
        super().__init__()
        self.epochs, self.initial_epoch, self.steps, self.label = epochs, initial_epoch, steps, label
        self.progress, self.verbose, self.history, self.live = progress, verbose, history, live

    def on_train_begin(self, logs=None):
        self.epoch_bar = tqdm(total=self.epochs, initial=self.initial_epoch, desc=self.label or "epochs",
                              unit="epoch", disable=not self.progress)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.batch_bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False,
                              disable=not self.progress)

    def on_train_batch_end(self, batch, logs=None):
        self.batch_bar.update(1)
        if batch % 10 == 0 and logs:
            self.batch_bar.set_postfix(format_progress(float(logs["loss"]), float(logs["accuracy"]),
                                                       float(logs["images"]) / (time.perf_counter() - self.start)))

    def on_epoch_end(self, epoch, logs=None):
        self.batch_bar.close()
        values = {k: v[-1] for k, v in self.history.metrics.items()}
        self.epoch_bar.update(1)
        self.epoch_bar.set_postfix(format_metrics(values))
        if self.live is not None:
            self.live.update(self.history)
        if self.verbose:
            tqdm.write(format_epoch(epoch, self.epochs, values))

    def on_train_end(self, logs=None):
        self.epoch_bar.close()


# ---------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------
def fit(
    model: keras.Model,
    train,
    val=None,
    *,
    epochs: int = 10,
    lr: float = 0.01,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    label_smoothing: float = 0.0,
    schedule: str | None = None,
    plateau_patience: int = 2,
    step_every: int | None = None,
    early_stopping: int | None = None,
    clip_grad_norm: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    mixed_precision: str | bool = "auto",
    channels_last: str | bool = "auto",
    compile: str | bool = "auto",
    batch_size: int = 64,
    live=None,
    progress: bool = True,
    label: str = "",
    max_batches: int | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    verbose: int = 1,
) -> History:
    """Compile ``model`` and train it with ``model.fit``, validating on ``val``; returns the History.

    The arguments mean what they mean in :func:`alexnet_lab.torch.training.fit`, with these differences:

    * ``train``/``val``: a ``tf.data.Dataset`` of ``(images, labels)`` batches (NHWC float
      images, integer labels), or whole NumPy arrays ``(x, y)`` (cut into ``batch_size``
      batches, ``train`` reshuffled every epoch).
    * ``mixed_precision``: Keras fixes the precision when the model is built (see
      :func:`alexnet_lab.keras.precision.use_mixed_precision`). ``"auto"`` trains in whatever the
      model was built with; any other value checks that the model matches it.
    * ``channels_last``: Keras models are channels-last (NHWC) already; recorded only.
    * ``label_smoothing``: Keras' ``SparseCategoricalCrossentropy`` has no label smoothing, so the model is
      compiled with :class:`SmoothedSparseCrossentropy`; ``val_loss`` is, as in PyTorch, the plain
      cross-entropy (a ``cross_entropy`` metric, which ``fit`` adds then).
    * ``schedule="onecycle"``: the optimizer's learning rate is a
      :class:`~alexnet_lab.keras.optim.OneCycle` schedule, evaluated at the optimizer's step count
      (``optimizer.iterations``, which checkpoints keep) before every update.
    * ``compile``: XLA (``jit_compile``) instead of ``torch.compile``; see
      :func:`alexnet_lab.keras.precision.choose_compile`.
    * ``checkpoint_dir``: ``ModelCheckpoint`` saves ``model.keras`` (weights and optimizer
      state) after every epoch, and ``history.json`` records the history and what resuming needs
      (see :mod:`alexnet_lab.keras.checkpoints`).
    * ``tensorboard_dir``: adds Keras' ``TensorBoard`` callback.
    * Several machines (``MultiWorkerMirroredStrategy``, ``TF_CONFIG``): build the model inside
      ``strategy.scope()``; only the chief writes the checkpoint and TensorBoard logs, every
      worker reads the checkpoint when resuming (see :mod:`alexnet_lab.keras.distributed`).
    * There is no ``device``: TensorFlow uses the GPU when it sees one.

    ``fit`` compiles the model with ``SparseCategoricalCrossentropy(from_logits=True)`` (or
    :class:`SmoothedSparseCrossentropy` with ``label_smoothing``) and the accuracy; calling it again
    continues training the same weights with a new optimizer. The History is the same as PyTorch's:
    ``loss`` is the training loss (smoothed with ``label_smoothing``), ``val_loss`` plain cross-entropy,
    ``lr`` the rate of the epoch's first batch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    num_classes = _num_classes(model)
    raw_train = train  # a course pipeline counts epochs itself (set_epoch), before take() wraps it
    train = batches.as_batches(train, batch_size=batch_size, shuffle=True, what="train", max_batches=max_batches,
                               num_classes=num_classes)
    val = batches.as_batches(val, batch_size=batch_size, what="val", max_batches=max_batches, num_classes=num_classes)
    policy = keras_precision.check_precision(model, mixed_precision)
    if not (isinstance(channels_last, bool) or channels_last == "auto"):
        raise ValueError(f"channels_last must be 'auto', True or False, got {channels_last!r}.")
    jit_compile, compile_reason = keras_precision.choose_compile(None, compile, model=model)

    monitor, mode = ("val_accuracy", "max") if val is not None else ("loss", "min")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1). Received: label_smoothing={label_smoothing}.")
    opt = optim.make_optimizer(model, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               clip_grad_norm=clip_grad_norm, nesterov=nesterov)
    # Made before compiling and resuming: the schedules start from the optimizer's learning rate, lr,
    # and "onecycle" replaces that rate with a schedule before the optimizer is built.
    scheduler = optim.make_scheduler(opt, schedule, epochs=epochs, monitor=monitor, mode=mode,
                                     plateau_patience=plateau_patience, step_every=step_every,
                                     steps_per_epoch=batches.num_batches(train))
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), ImageCount()]
    if label_smoothing:
        loss = SmoothedSparseCrossentropy(label_smoothing)
        metrics.append(keras.metrics.SparseCategoricalCrossentropy(name=_PLAIN_LOSS, from_logits=True))
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=opt, loss=loss, metrics=metrics, jit_compile=jit_compile)
    stopper = optim.make_early_stopping(early_stopping, monitor=monitor, mode=mode)
    device = keras_precision.describe_device()
    history = History("keras", label, info={
        "device": device, "precision": policy,
        "channels_last": True, "channels_last_reason": "Keras models are channels-last (NHWC)",
        "compiler": "XLA" if model.jit_compile else None, "compile_reason": compile_reason,
        "seed": seeding.current_seed(), "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "schedule": schedule, "nesterov": nesterov, "label_smoothing": label_smoothing, "monitor": monitor,
        "max_batches": max_batches, "epochs": epochs,
    })
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    initial_epoch, restore = 0, None
    if resume:
        initial_epoch, history, restore = checkpoints.resume(directory, model, history, verbose=verbose)
        checkpoints.set_data_epoch(raw_train, initial_epoch)  # the order and augmentation of the next epoch
        if history.info.get("stopped_early_after_epoch") and stopper is not None:
            if verbose:
                print("alexnet-lab: this run had already stopped early; nothing to resume.")
            return history
    elif directory is not None and (directory / checkpoints.MODEL_NAME).exists() and verbose:
        print(f"alexnet-lab: starting afresh; {directory / checkpoints.MODEL_NAME} will be overwritten "
              "(resume=True continues it).")
    if verbose:
        print(f"alexnet-lab: Keras trains on {device}; dtype policy {policy}; "
              f"XLA {'on' if model.jit_compile else 'off'} ({compile_reason})"
              + ("" if channels_last is not False else "; channels_last=False ignored: Keras models are NHWC"))

    # Several machines: only the chief writes into checkpoint_dir. Saving a model is a collective
    # operation there, so the other workers save too, into a scratch folder deleted at the end.
    chief = distributed.is_chief()
    scratch = Path(tempfile.mkdtemp(prefix="alexnet-lab-worker-")) if directory is not None and not chief else None
    writes_to = scratch or directory
    callbacks = _callbacks(history, writes_to, restore, scheduler=scheduler, stopper=stopper, epochs=epochs,
                           initial_epoch=initial_epoch, steps=batches.num_batches(train),
                           tensorboard_dir=tensorboard_dir if chief else None, live=live, progress=progress,
                           verbose=verbose, label=label)
    if writes_to is not None:
        writes_to.mkdir(parents=True, exist_ok=True)
    try:
        model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                  shuffle=False, verbose=0)  # shuffle: the dataset shuffles itself
    finally:
        if writes_to is not None and (writes_to / checkpoints.PARTIAL_NAME).exists():
            (writes_to / checkpoints.PARTIAL_NAME).unlink()  # a save that failed half-way
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if verbose and "stopped_early_after_epoch" in history.info and stopper is not None:
        tqdm.write(f"Early stopping: {monitor} has not improved for {early_stopping} epochs.")
    return history


def _callbacks(history, directory, restore, *, scheduler, stopper, epochs, initial_epoch, steps, tensorboard_dir,
               live, progress, verbose, label) -> list[keras.callbacks.Callback]:
    """The callbacks, in the order they must run at the end of each epoch."""
    callbacks = [_Recorder(history),  # first: sees the learning rate before ReduceLROnPlateau changes it
                 _Progress(epochs=epochs, initial_epoch=initial_epoch, steps=steps, label=label, progress=progress,
                           verbose=verbose, history=history, live=live)]
    watched = {}  # the callbacks whose counters a checkpoint keeps
    if isinstance(scheduler, keras.callbacks.Callback):  # not "onecycle": the optimizer evaluates that one
        callbacks.append(scheduler)
        if isinstance(scheduler, keras.callbacks.ReduceLROnPlateau):
            watched["plateau"] = scheduler
    if stopper is not None:
        watched["early_stopping"] = stopper
        callbacks.append(stopper)
    callbacks += checkpoints.checkpoint_callbacks(directory, history, watched, restore)
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.fspath(tensorboard_dir)))
    return callbacks


def _outputs(model: keras.Model, data, max_batches: int | None):
    """Logits and labels over ``data`` (read once), and the images/s of the forward passes."""
    logits, labels = [], []
    start = time.perf_counter()
    for i, (x, y) in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        logits.append(np.asarray(model.predict_on_batch(x), dtype=np.float32))
        labels.append(np.asarray(y))
    seconds = time.perf_counter() - start
    if not labels:
        raise ValueError("The evaluation data gave no batches.")
    labels = np.concatenate(labels)
    return np.concatenate(logits), labels, len(labels) / seconds


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def evaluate(model: keras.Model, data, *, mixed_precision: str | bool | None = None, max_batches: int | None = None,
             batch_size: int = 64) -> dict:
    """Loss, accuracy and images/s of ``model`` on ``data`` (dropout off).

    ``data`` takes the same forms as ``fit``'s ``train``. Returns
    ``{"loss": ..., "accuracy": ..., "images_per_s": ...}``, computed the same way as
    :func:`alexnet_lab.torch.training.evaluate` (mean cross-entropy over all images).
    ``mixed_precision``: a Keras model computes in the dtype policy it was built with, which is
    also the precision ``fit`` trained and validated in; None and ``"auto"`` accept it, True,
    False, ``"bf16"`` and ``"fp16"`` check that it matches (as ``fit`` does).
    """
    keras_precision.check_precision(model, mixed_precision)
    data = batches.as_batches(data, batch_size=batch_size, what="data", num_classes=_num_classes(model))
    logits, labels, images_per_s = _outputs(model, data, max_batches)
    loss = -_log_softmax(logits)[np.arange(len(labels)), labels].mean()
    accuracy = (logits.argmax(axis=1) == labels).mean()
    return {"loss": float(loss), "accuracy": float(accuracy), "images_per_s": images_per_s}


def predict(model: keras.Model, data, *, probabilities: bool = True, batch_size: int = 64,
            max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (or logits) for every image in ``data``, and the true labels, as NumPy arrays.

    The data is read once, so scores and labels stay aligned even when ``data`` shuffles.
    """
    data = batches.as_batches(data, batch_size=batch_size, what="data", num_classes=_num_classes(model))
    logits, labels, _ = _outputs(model, data, max_batches)
    if probabilities:
        return np.exp(_log_softmax(logits)).astype(np.float32), labels
    return logits, labels
