"""Training and evaluating the Keras models: :func:`fit`, :func:`evaluate`, :func:`predict`.

Read this file beside :mod:`alexnet_lab.torch_training`: both ``fit`` functions take the
same arguments and return the same framework-free :class:`~alexnet_lab.history.History`,
so one plotting function serves both. In PyTorch we write the training loop; in Keras
``model.fit`` runs it, and each extra -- learning-rate schedule, early stopping,
checkpoints, TensorBoard -- is a *callback* that ``model.fit`` calls after every epoch::

    model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9, l2=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=10,
              callbacks=[keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.1, patience=2)])

Mixed precision in Keras is a property of the *model*, chosen when it is built: call
:func:`use_mixed_precision` before building it (``keras_models.build`` then keeps the last
layer in float32, so the loss is computed accurately).

Weight decay: Keras' own ``weight_decay=`` argument is *decoupled* (it shrinks the weights
by ``lr * wd * w`` next to the gradient step, as AdamW does), while the AlexNet paper and
PyTorch's SGD add ``wd * w`` to the gradient, where momentum then accumulates it: with
momentum 0.9 that decays about 10 times more for the same number. So that
``weight_decay=5e-4`` means the same thing in both frameworks, the :class:`SGD` and
:class:`Adam` below add ``l2 * w`` to the gradients, like PyTorch. One difference is left:
with ``clip_grad_norm``, Keras clips the gradient *with* the decay term, PyTorch without it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

# keras_models registers the custom layers, so that saved models load.
from . import devices, distributed, keras_models  # noqa: E402,F401
from .files import atomic_write_json  # noqa: E402
from .history import History  # noqa: E402

__all__ = [
    "fit", "evaluate", "predict", "use_mixed_precision", "choose_policy", "choose_jit_compile", "make_optimizer",
    "SGD", "Adam",
    "ImageCount", "MODEL_NAME", "STATE_NAME", "device_description",
]

MODEL_NAME = "model.keras"
STATE_NAME = "history.json"
_PARTIAL_NAME = ".model-partial.keras"  # ModelCheckpoint writes here; then it replaces MODEL_NAME in one step
SCHEDULES = (None, "plateau", "cosine", "step")
OPTIMIZERS = ("sgd", "adam")


# ---------------------------------------------------------------------------
# Device and mixed precision
# ---------------------------------------------------------------------------
def _gpus():
    return tf.config.list_physical_devices("GPU")


def _gpu_capability(gpu) -> tuple[int, int] | None:
    return tf.config.experimental.get_device_details(gpu).get("compute_capability")


def device_description() -> str:
    """Where TensorFlow runs Keras: the first GPU if there is one, else the CPU."""
    gpus = _gpus()
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        extra = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
        return f"GPU:0 ({details.get('device_name', 'GPU')}{extra})"
    return f"CPU ({devices.cpu_name()})"


def choose_policy(mode: str | bool = "auto") -> tuple[str, str]:
    """The Keras dtype policy for ``mode`` and the reason: ``("mixed_bfloat16", "...")``.

    Same rules as :func:`alexnet_lab.devices.choose_precision`: ``"auto"`` uses bfloat16
    on GPUs of compute capability >= 8.0 and on CPUs with AMX/AVX512-BF16, float16 on
    capability 7.x GPUs, float32 elsewhere; ``True``, ``False``, ``"bf16"`` and ``"fp16"`` force a choice.
    """
    if not (isinstance(mode, bool) or mode in ("auto", "bf16", "fp16")):
        raise ValueError(f"mixed_precision must be one of 'auto', True, False, 'bf16', 'fp16'; got {mode!r}.")
    if mode is False:
        return "float32", "mixed precision switched off"
    if mode == "bf16":
        return "mixed_bfloat16", "bfloat16 asked for"
    if mode == "fp16":
        return "mixed_float16", "float16 asked for"
    gpus = _gpus()
    if gpus:
        capability = _gpu_capability(gpus[0]) or (0, 0)
        if capability >= (8, 0):
            return "mixed_bfloat16", f"GPU compute capability {capability[0]}.{capability[1]} >= 8.0"
        if capability >= (7, 0) or mode is True:
            return "mixed_float16", f"GPU compute capability {capability[0]}.{capability[1]}: float16 tensor cores"
        return "float32", f"GPU compute capability {capability[0]}.{capability[1]} < 7.0 has no tensor cores"
    if devices.cpu_has_fast_bf16():
        return "mixed_bfloat16", "this CPU has AMX/AVX512-BF16"
    if mode is True:
        return "mixed_bfloat16", "asked for; this CPU has no AMX/AVX512-BF16, expect it to be slower"
    return "float32", "this CPU has no AMX/AVX512-BF16: bfloat16 would be emulated and slower"


def choose_jit_compile(mode: str | bool = "auto", model: keras.Model | None = None) -> tuple[bool | str, str]:
    """Whether ``fit`` compiles the model's steps with XLA (``jit_compile``); returns ``(value, reason)``.

    ``"auto"`` turns XLA on for GPUs (Keras' own default) and for CPUs without AVX-512: on an AVX2
    CPU (AMD EPYC, 2 cores) it trained the classic AlexNet with 1.5 to 1.75 times less CPU time per image
    and the cifar10 one with 1.15 to 1.3 times less (``alexnet-lab bench``, see docs/performance.md),
    after a compilation of seconds. On a CPU with AVX-512 (AMD EPYC, Zen 4, 2 cores) it was the other
    way round: XLA trained at 0.75 (cifar10) and 0.86 (classic) times the speed of plain Keras, whose
    oneDNN kernels use AVX-512 (and bfloat16 there), so ``"auto"`` leaves it off on such CPUs.
    It stays off where Keras would refuse it: under a ``tf.distribute`` strategy
    (Keras' ``"auto"`` decides), and with TensorFlow's deterministic ops on, which
    ``alexnet_lab.seed_everything(seed)`` switches on (``deterministic=False`` keeps XLA).
    ``True``/``False`` force it on or off.
    """
    if isinstance(mode, bool):
        return mode, "asked for" if mode else "switched off"
    if mode != "auto":
        raise ValueError(f"compile must be 'auto', True or False, got {mode!r}.")
    if tf.distribute.has_strategy() or getattr(model, "_distribute_strategy", None) is not None:
        return "auto", "a tf.distribute strategy: Keras decides"
    if _op_determinism_enabled():
        return False, ("deterministic ops are on (seed_everything(..., deterministic=True)) and Keras runs no XLA "
                       "then; deterministic=False gives XLA's speed")
    if _gpus():
        return True, "Keras' own default on GPUs"
    if "avx512f" in devices.cpu_flags():
        return False, ("measured slower on an AVX-512 CPU, where TensorFlow's own oneDNN kernels win (0.75 to 0.86 "
                       "times their speed); compile=True forces it")
    return True, "measured faster on an AVX2 CPU"


def _op_determinism_enabled() -> bool:
    """Whether ``tf.config.experimental.enable_op_determinism()`` is in force (Keras then refuses XLA)."""
    try:
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:  # moved in a newer TensorFlow: let Keras decide and warn
        return False
    return bool(is_op_determinism_enabled())


def use_mixed_precision(mode: str | bool = "auto", *, verbose: int = 1) -> str:
    """Set Keras' global dtype policy; call it BEFORE building the model. Returns the policy's name.

    Models built afterwards compute in 16 bits where the policy says so and keep their
    weights in float32; ``use_mixed_precision(False)`` goes back to float32. Example::

        keras_training.use_mixed_precision("auto")     # prints which policy and why
        model = keras_models.alexnet("cifar10")        # built under that policy
    """
    policy, reason = choose_policy(mode)
    keras.mixed_precision.set_global_policy(policy)
    if verbose:
        print(f"alexnet-lab: Keras dtype policy {policy} ({reason}); build the model after this call.")
    return policy


def _model_policy(model: keras.Model) -> str:
    """The dtype policy the model's layers were built with (``float32``, ``mixed_bfloat16``, ...)."""
    for layer in model.layers:
        if layer.weights:
            return layer.dtype_policy.name
    return model.dtype_policy.name


def _check_precision(model: keras.Model, mode) -> str:
    """Check that the built model matches ``mixed_precision``; Keras cannot change it after building."""
    policy = _model_policy(model)
    wanted = {False: ("float32",), True: ("mixed_bfloat16", "mixed_float16"), "bf16": ("mixed_bfloat16",),
              "fp16": ("mixed_float16",)}
    if mode == "auto":
        return policy
    if isinstance(mode, str) and mode not in wanted or not isinstance(mode, (bool, str)):
        raise ValueError(f"mixed_precision must be one of 'auto', True, False, 'bf16', 'fp16'; got {mode!r}.")
    if policy not in wanted[mode]:
        raise ValueError(f"The model was built with the dtype policy {policy!r}, but mixed_precision={mode!r} asks "
                         f"for {' or '.join(wanted[mode])}. In Keras the policy is fixed when the model is built: call "
                         f"keras_training.use_mixed_precision({mode!r}) and build the model again.")
    return policy


# ---------------------------------------------------------------------------
# Optimizers with the paper's (and PyTorch's) weight decay
# ---------------------------------------------------------------------------
def _add_l2(grads, variables, l2: float):
    """``grad + l2 * w`` for every variable: weight decay the way the paper and PyTorch do it."""
    if not l2:
        return grads
    return [g if g is None else g + l2 * ops.cast(v, g.dtype) for g, v in zip(grads, variables)]


@keras.saving.register_keras_serializable(package="alexnet_lab")
class SGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``l2``: ``l2 * w`` is added to each gradient before the momentum step."""

    def __init__(self, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        return super().apply(_add_l2(grads, variables, self.l2), trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="alexnet_lab")
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``l2``, like ``torch.optim.Adam(weight_decay=...)`` (not AdamW)."""

    def __init__(self, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        return super().apply(_add_l2(grads, variables, self.l2), trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def make_optimizer(name: str = "sgd", *, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                   clip_grad_norm: float | None = None) -> keras.optimizers.Optimizer:
    """SGD with momentum (the paper's) or Adam, with L2 weight decay and optional global-norm clipping."""
    if name == "sgd":
        return SGD(learning_rate=lr, momentum=momentum, l2=weight_decay, global_clipnorm=clip_grad_norm)
    if name == "adam":
        return Adam(learning_rate=lr, l2=weight_decay, global_clipnorm=clip_grad_norm)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")


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


# ---------------------------------------------------------------------------
# Data: a tf.data.Dataset of (images, labels) batches, or whole NumPy arrays
# ---------------------------------------------------------------------------
def _as_dataset(data, batch_size: int, shuffle: bool, what: str, max_batches: int | None, num_classes: int | None):
    """``data`` as a tf.data.Dataset of ``(x, y)`` batches, checked, limited to ``max_batches`` batches."""
    if data is None:
        return None
    if type(data).__name__ == "ImageSet":
        raise TypeError(f"{what} is an ImageSet (uint8 images). Turn it into batches of float images first, e.g. "
                        f"alexnet_lab.pipelines.tf_dataset({what}, preprocess, batch_size=64).")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(a, np.ndarray) for a in data):
        x, y = data
        _check_arrays(x, y, num_classes)
        data = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            data = data.shuffle(len(x), reshuffle_each_iteration=True)
        data = data.batch(batch_size)
    if not isinstance(data, tf.data.Dataset):
        raise TypeError(f"{what} must be a tf.data.Dataset of (images, labels) batches or a tuple of NumPy arrays "
                        f"(x, y); got {type(data).__name__}.")
    _check_spec(data.element_spec)
    return data.take(max_batches) if max_batches is not None else data


def _check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int | None) -> None:
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"Labels must be a 1-D array with one class index per image; got shape {y.shape} for "
                         f"{len(x)} images. One-hot labels? Use y.argmax(1).")
    if x.ndim != 4:
        raise ValueError(f"Images must have the shape (N, H, W, C); got {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"Images must be floats (scaled and normalized), got {x.dtype}. Use "
                        "alexnet_lab.pipelines.tf_dataset, or x.astype('float32') / 255 for a quick test.")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"Labels must be integers (class indices), got {y.dtype}.")
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1} for this {num_classes}-class model; got "
                         f"{y.min()}..{y.max()}. Build the model with num_classes=... to match the data.")


def _check_spec(spec) -> None:
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise TypeError(f"The dataset must yield (images, labels) pairs; its elements are {spec}.")
    x, y = spec
    if not x.dtype.is_floating:
        raise TypeError(f"Images must be floats (scaled and normalized), got {x.dtype.name}. Add "
                        ".map(lambda x, y: (tf.cast(x, tf.float32) / 255, y)), or use alexnet_lab.pipelines.tf_dataset.")
    if x.shape.rank is not None and x.shape.rank != 4:
        raise ValueError(f"Images must come in batches of shape (batch, H, W, C); got {x.shape}. Call .batch(64).")
    if y.shape.rank is not None and y.shape.rank != 1:
        raise ValueError(f"Labels must come as 1-D batches of class indices; got {y.shape}. One-hot labels? "
                         "Use .map(lambda x, y: (x, tf.argmax(y, axis=-1))).")
    if not y.dtype.is_integer:
        raise TypeError(f"Labels must be integers (class indices), got {y.dtype.name}.")


def _num_classes(model: keras.Model) -> int | None:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return int(shape[-1]) if shape is not None and shape[-1] is not None else None


def _steps(dataset) -> int | None:
    n = int(dataset.cardinality())
    return n if n >= 0 else None


# ---------------------------------------------------------------------------
# Callbacks: history, progress, checkpoints
# ---------------------------------------------------------------------------
def _lr(model: keras.Model) -> float:
    return float(ops.convert_to_numpy(model.optimizer.learning_rate))


class _Recorder(keras.callbacks.Callback):
    """Fills the framework-free History, with the learning rate the epoch trained with and images/s."""

    def __init__(self, history: History):
        super().__init__()
        self.history = history

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.train_end = time.perf_counter()
        self.validating = False

    def on_test_begin(self, logs=None):
        self.train_end, self.validating = time.perf_counter(), True  # validation starts: training time ends

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        train_seconds = (self.train_end if self.validating else now) - self.start
        values = {k: float(logs[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs}
        values.update(lr=_lr(self.model), images_per_s=float(logs["images"]) / train_seconds,
                      epoch_time_s=now - self.start)
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
            self.batch_bar.set_postfix(loss=f"{float(logs['loss']):.4f}", acc=f"{float(logs['accuracy']):.3f}",
                                       img_s=f"{float(logs['images']) / (time.perf_counter() - self.start):.0f}")

    def on_epoch_end(self, epoch, logs=None):
        self.batch_bar.close()
        values = {k: v[-1] for k, v in self.history.metrics.items()}
        self.epoch_bar.update(1)
        self.epoch_bar.set_postfix({k: f"{values[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                                    if k in values})
        if self.live is not None:
            self.live.update(self.history)
        if self.verbose:
            tqdm.write(_format_epoch(epoch, self.epochs, values))

    def on_train_end(self, logs=None):
        self.epoch_bar.close()


def _format_epoch(epoch: int, epochs: int, values: dict) -> str:
    """One epoch's line, the same as the PyTorch side prints."""
    parts = [f"{k} {values[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in values]
    return (f"epoch {epoch + 1}/{epochs}: {' '.join(parts)} | lr {values['lr']:.3g} | "
            f"{values['images_per_s']:.0f} img/s, {values['epoch_time_s']:.1f} s")


class _Checkpointer(keras.callbacks.Callback):
    """Makes ModelCheckpoint's file the checkpoint in one step, then writes the history (atomically).

    Runs after ``ModelCheckpoint`` (which saved the model to a temporary ``.keras`` file in
    the same folder) and after the schedule and early stopping, so the state it stores is
    the one the next epoch starts from. On resume it also gives ReduceLROnPlateau and
    EarlyStopping back their counters (Keras resets them when ``fit`` starts).
    """

    def __init__(self, directory: Path, history: History, watched: dict, restore: dict | None):
        super().__init__()
        self.directory, self.history, self.watched, self.restore = directory, history, watched, restore

    def on_train_begin(self, logs=None):
        for name, callback in self.watched.items():
            if self.restore and name in self.restore:
                for attribute, value in self.restore[name].items():
                    setattr(callback, attribute, value)

    def on_epoch_end(self, epoch, logs=None):
        stopper = self.watched.get("early_stopping")
        if stopper is not None and self.model.stop_training:
            self.history.info["stopped_early_after_epoch"] = epoch + 1
        if self.directory is None:
            return
        os.replace(self.directory / _PARTIAL_NAME, self.directory / MODEL_NAME)
        state = {name: {a: _plain(getattr(cb, a)) for a in ("best", "wait", "cooldown_counter") if hasattr(cb, a)}
                 for name, cb in self.watched.items()}
        atomic_write_json(self.directory / STATE_NAME,
                          {**self.history.to_dict(), "resume": {"epoch": epoch + 1, "callbacks": state}})


def _plain(value):
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _schedule_callback(schedule, *, lr, epochs, monitor, mode, plateau_patience, step_every):
    """The Keras callback for a learning-rate schedule (the same schedules as torch_training.make_scheduler)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if schedule == "plateau":
        if plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1 epoch, got {plateau_patience}.")
        return keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.1, patience=plateau_patience,
                                                 min_delta=1e-4)
    if schedule == "cosine":
        return keras.callbacks.LearningRateScheduler(lambda epoch: lr * (1 + math.cos(math.pi * epoch / epochs)) / 2)
    if schedule == "step":
        every = step_every or max(1, epochs // 3)
        return keras.callbacks.LearningRateScheduler(lambda epoch: lr * 0.1 ** (epoch // every))
    return None


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

    The arguments mean what they mean in :func:`alexnet_lab.torch_training.fit`, with these differences:

    * ``train``/``val``: a ``tf.data.Dataset`` of ``(images, labels)`` batches (NHWC float
      images, integer labels), or whole NumPy arrays ``(x, y)`` (cut into ``batch_size``
      batches, ``train`` reshuffled every epoch).
    * ``mixed_precision``: Keras fixes the precision when the model is built (see
      :func:`use_mixed_precision`). ``"auto"`` trains in whatever the model was built
      with; any other value checks that the model matches it.
    * ``channels_last``: Keras models are channels-last (NHWC) already; recorded only.
    * ``compile``: XLA (``jit_compile``) instead of ``torch.compile``; see :func:`choose_jit_compile`.
    * ``checkpoint_dir``: ``ModelCheckpoint`` saves ``model.keras`` (weights and optimizer
      state) after every epoch, and ``history.json`` records the history and what resuming needs.
    * ``tensorboard_dir``: adds Keras' ``TensorBoard`` callback.
    * Several machines (``MultiWorkerMirroredStrategy``, ``TF_CONFIG``): build the model inside
      ``strategy.scope()``; only the chief writes the checkpoint and TensorBoard logs, every
      worker reads the checkpoint when resuming (see :mod:`alexnet_lab.distributed`).
    * There is no ``device``: TensorFlow uses the GPU when it sees one.

    ``fit`` compiles the model with ``SparseCategoricalCrossentropy(from_logits=True)`` and
    the accuracy; calling it again continues training the same weights with a new optimizer.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    num_classes = _num_classes(model)
    set_epoch = getattr(train, "set_epoch", None)  # a course pipeline's (before take() wraps it)
    train = _as_dataset(train, batch_size, True, "train", max_batches, num_classes)
    val = _as_dataset(val, batch_size, False, "val", max_batches, num_classes)
    policy = _check_precision(model, mixed_precision)
    if not (isinstance(channels_last, bool) or channels_last == "auto"):
        raise ValueError(f"channels_last must be 'auto', True or False, got {channels_last!r}.")
    jit_compile, compile_reason = choose_jit_compile(compile, model)

    model.compile(optimizer=make_optimizer(optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                           clip_grad_norm=clip_grad_norm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), ImageCount()],
                  jit_compile=jit_compile)
    monitor, mode = ("val_accuracy", "max") if val is not None else ("loss", "min")
    history = History("keras", label, info={
        "device": device_description(), "precision": policy,
        "channels_last": True, "channels_last_reason": "Keras models are channels-last (NHWC)",
        "compiler": "XLA" if model.jit_compile else None, "compile_reason": compile_reason,
        "seed": _current_seed(), "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "schedule": schedule, "monitor": monitor, "max_batches": max_batches, "epochs": epochs,
    })
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    initial_epoch, restore = 0, None
    if resume:
        initial_epoch, history, restore = _resume(directory, model, history, verbose)
        if set_epoch is not None:
            set_epoch(initial_epoch)  # the order and augmentation of the epoch that comes next
        if history.info.get("stopped_early_after_epoch") and early_stopping is not None:
            if verbose:
                print("alexnet-lab: this run had already stopped early; nothing to resume.")
            return history
    elif directory is not None and (directory / MODEL_NAME).exists() and verbose:
        print(f"alexnet-lab: starting afresh; {directory / MODEL_NAME} will be overwritten (resume=True continues it).")
    if verbose:
        print(f"alexnet-lab: Keras trains on {device_description()}; dtype policy {policy}; "
              f"XLA {'on' if model.jit_compile else 'off'} ({compile_reason})"
              + ("" if channels_last is not False else "; channels_last=False ignored: Keras models are NHWC"))

    # Several machines: only the chief writes into checkpoint_dir. Saving a model is a collective
    # operation there, so the other workers save too, into a scratch folder deleted at the end.
    chief = distributed.is_chief()
    scratch = Path(tempfile.mkdtemp(prefix="alexnet-lab-worker-")) if directory is not None and not chief else None
    writes_to = scratch or directory
    callbacks, watched = _callbacks(history, writes_to, restore, epochs=epochs, initial_epoch=initial_epoch,
                                    steps=_steps(train), lr=lr, monitor=monitor, mode=mode, schedule=schedule,
                                    plateau_patience=plateau_patience, step_every=step_every,
                                    early_stopping=early_stopping, tensorboard_dir=tensorboard_dir if chief else None,
                                    live=live, progress=progress, verbose=verbose, label=label)
    if writes_to is not None:
        writes_to.mkdir(parents=True, exist_ok=True)
    try:
        model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                  shuffle=False, verbose=0)  # shuffle: the dataset shuffles itself
    finally:
        if writes_to is not None and (writes_to / _PARTIAL_NAME).exists():
            (writes_to / _PARTIAL_NAME).unlink()  # a save that failed half-way
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if verbose and "stopped_early_after_epoch" in history.info and watched.get("early_stopping") is not None:
        tqdm.write(f"Early stopping: {monitor} has not improved for {early_stopping} epochs.")
    return history


def _callbacks(history, directory, restore, *, epochs, initial_epoch, steps, lr, monitor, mode, schedule,
               plateau_patience, step_every, early_stopping, tensorboard_dir, live, progress, verbose, label):
    """The callbacks, in the order they must run at the end of each epoch."""
    callbacks = [_Recorder(history),  # first: sees the learning rate before ReduceLROnPlateau changes it
                 _Progress(epochs=epochs, initial_epoch=initial_epoch, steps=steps, label=label, progress=progress,
                           verbose=verbose, history=history, live=live)]
    watched = {}
    scheduler = _schedule_callback(schedule, lr=lr, epochs=epochs, monitor=monitor, mode=mode,
                                   plateau_patience=plateau_patience, step_every=step_every)
    if scheduler is not None:
        callbacks.append(scheduler)
        if isinstance(scheduler, keras.callbacks.ReduceLROnPlateau):
            watched["plateau"] = scheduler
    if early_stopping is not None:
        if early_stopping < 1:
            raise ValueError(f"early_stopping patience must be at least 1 epoch, got {early_stopping}.")
        watched["early_stopping"] = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=early_stopping)
        callbacks.append(watched["early_stopping"])
    if directory is not None:
        # Saves the model (weights + optimizer) after the schedule has set the next epoch's learning rate.
        callbacks.append(keras.callbacks.ModelCheckpoint(os.fspath(directory / _PARTIAL_NAME)))
    callbacks.append(_Checkpointer(directory, history, watched, restore))
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.fspath(tensorboard_dir)))
    return callbacks, watched


def _current_seed() -> int | None:
    seeding = sys.modules.get("alexnet_lab.seeding")
    return seeding.current_seed() if seeding is not None else None


def _resume(directory: Path, model: keras.Model, history: History, verbose: int):
    """Load the weights and optimizer state saved in ``directory``; returns (epoch, history, callback states)."""
    model_path, state_path = directory / MODEL_NAME, directory / STATE_NAME
    if not (model_path.exists() and state_path.exists()):
        if verbose:
            print(f"alexnet-lab: no checkpoint in {directory} yet; starting from epoch 1.")
        return 0, history, None
    saved = keras.saving.load_model(model_path)
    try:
        model.set_weights(saved.get_weights())
        model.optimizer.build(model.trainable_variables)
        if len(model.optimizer.variables) != len(saved.optimizer.variables):
            raise ValueError(f"{len(saved.optimizer.variables)} saved optimizer variables, "
                             f"{len(model.optimizer.variables)} expected")
        for variable, value in zip(model.optimizer.variables, saved.optimizer.variables):
            variable.assign(value)
    except ValueError as e:
        raise ValueError(f"The checkpoint {model_path} does not fit this model or optimizer ({e}). Resume with the "
                         "same model and optimizer, or use another checkpoint_dir or resume=False.") from e
    state = json.loads(state_path.read_text())
    stored = History.from_dict(state)
    stored.info.update({k: v for k, v in history.info.items() if k != "seed"})
    stored.info["resumed_from_epoch"] = state["resume"]["epoch"]
    stored.label = history.label or stored.label
    if verbose:
        print(f"alexnet-lab: resuming from {model_path} after epoch {state['resume']['epoch']}.")
    return state["resume"]["epoch"], stored, state["resume"]["callbacks"]


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


def evaluate(model: keras.Model, data, *, max_batches: int | None = None, batch_size: int = 64) -> dict:
    """Loss, accuracy and images/s of ``model`` on ``data`` (dropout off).

    ``data`` takes the same forms as ``fit``'s ``train``. Returns
    ``{"loss": ..., "accuracy": ..., "images_per_s": ...}``, computed the same way as
    :func:`alexnet_lab.torch_training.evaluate` (mean cross-entropy over all images).
    """
    data = _as_dataset(data, batch_size, False, "data", None, _num_classes(model))
    logits, labels, images_per_s = _outputs(model, data, max_batches)
    loss = -_log_softmax(logits)[np.arange(len(labels)), labels].mean()
    accuracy = (logits.argmax(axis=1) == labels).mean()
    return {"loss": float(loss), "accuracy": float(accuracy), "images_per_s": images_per_s}


def predict(model: keras.Model, data, *, probabilities: bool = True, batch_size: int = 64,
            max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (or logits) for every image in ``data``, and the true labels, as NumPy arrays.

    The data is read once, so scores and labels stay aligned even when ``data`` shuffles.
    """
    data = _as_dataset(data, batch_size, False, "data", None, _num_classes(model))
    logits, labels, _ = _outputs(model, data, max_batches)
    if probabilities:
        return np.exp(_log_softmax(logits)).astype(np.float32), labels
    return logits, labels
