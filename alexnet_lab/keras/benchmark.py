"""``alexnet-lab bench`` in Keras: the speed of one case, measured in this process.

Read this file beside :mod:`alexnet_lab.torch.benchmark`: both have :func:`model_case` (training
and inference images/s of the model for one path: ``baseline``, ``default`` or a candidate),
:func:`pipeline_case` (images/s of the input pipeline) and :func:`steps` (one training and one
inference step as callables). What is measured and how: :mod:`alexnet_lab.core.benchmark`.

* the **baseline** is the ``float32`` policy with ``jit_compile=False``: the code a tutorial would write;
* the **default** path makes exactly the choices :func:`alexnet_lab.keras.training.fit` makes here
  (:mod:`alexnet_lab.keras.precision`: the dtype policy and XLA);
* a **candidate** switches one speed-up on (``options``: ``precision``, ``xla``).

Keras models are channels-last already. TensorFlow is imported inside :func:`model_case`, after the
thread count is set: TensorFlow fixes its thread pools when it starts.
"""

from __future__ import annotations

import os

from alexnet_lab.core import benchmark, measure

__all__ = ["steps", "model_case", "pipeline_case"]

_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def steps(model, x, y, *, jit_compile: bool | str = False):
    """One training step and one inference step of ``model`` on the fixed batch ``(x, y)``, as callables.

    Compiles ``model`` with SGD (:func:`alexnet_lab.keras.optim.make_optimizer`: lr 1e-3, momentum 0.9,
    weight decay 5e-4) on the cross-entropy of the logits, with ``jit_compile`` (XLA: True, False or
    ``"auto"``, Keras' own choice). The training step is ``model.train_on_batch``, the inference step
    ``model.predict_on_batch`` (evaluation mode). The dtype policy is the one the model was built under.
    """
    import keras

    from alexnet_lab.keras import optim as keras_optim

    model.compile(optimizer=keras_optim.make_optimizer(model, "sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))


def _choices(spec: dict) -> tuple[str, bool | str]:
    """``(dtype policy, jit_compile)`` of the case's path, on the device Keras trains on."""
    from alexnet_lab.keras import precision as keras_precision

    options = spec.get("options", {})
    if spec["path"] == "baseline":
        return "float32", False
    if spec["path"] == "default":  # exactly the choices keras_training.fit makes
        return keras_precision.choose_precision(None, "auto")[0], keras_precision.choose_compile(None, "auto")[0]
    return keras_precision.choose_precision(None, options.get("precision", False))[0], options.get("xla", False)


def model_case(spec: dict) -> dict:
    """Training and inference speed of the Keras model for one path (baseline, default or a candidate).

    ``spec``: ``preset``, ``path``, ``quick``, and optionally ``options`` (a candidate's), ``threads``,
    ``batch_size``, ``warmup``, ``repetitions`` (Keras uses the GPU whenever TensorFlow sees one).
    Returns the case's record (without the fields of the whole run, added by :mod:`alexnet_lab.cli.bench`).
    """
    import tensorflow as tf

    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    import keras

    from alexnet_lab.keras import models as keras_models
    from alexnet_lab.keras import precision as keras_precision

    rss_start = measure.rss_mib()
    policy, jit_compile = _choices(spec)
    gpus = tf.config.list_physical_devices("GPU")
    batch_size, warmup, repetitions = benchmark.case_settings(spec, gpu=bool(gpus))

    keras.mixed_precision.set_global_policy(policy)  # before building: the policy belongs to the model
    try:
        keras.utils.set_random_seed(0)
        model = keras_models.alexnet(spec["preset"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    h, w, c = model.inputs[0].shape[1:]
    x = tf.random.normal((batch_size, h, w, c))
    y = tf.random.uniform((batch_size,), maxval=min(10, model.outputs[0].shape[-1]), dtype=tf.int64)
    train_step, infer_step = steps(model, x, y, jit_compile=jit_compile)
    xla = bool(model.jit_compile)  # "auto" resolved: Keras' own choice
    train = measure.time_steps(train_step, warmup=warmup, repetitions=repetitions)
    infer = measure.time_steps(infer_step, warmup=warmup, repetitions=repetitions)
    dtype = _DTYPES[policy]
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        peak, how = benchmark.gpu_peak_flops(details.get("device_name", "GPU"), dtype)
        gpu_mib = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        peak, how = benchmark.this_cpu_peak_flops()
        gpu_mib = None
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return {
        "precision": dtype, "policy": policy, "channels_last": True, "compiled": xla,
        "compiler": "XLA" if xla else None,
        "device": keras_precision.describe_device(), "device_type": "cuda" if gpus else "cpu", "threads": threads,
        "framework_version": f"{keras.__version__} (tensorflow {tf.__version__})", "batch_size": batch_size,
        "warmup_steps": warmup, "repetitions": repetitions, **measure.step_rates("train", train, batch_size),
        **measure.step_rates("infer", infer, batch_size), "peak_flop_per_s": peak, "peak_estimate": how,
        "rss_after_import_mib": rss_start, "gpu_peak_mib": gpu_mib,
    }


def pipeline_case(spec: dict) -> dict:
    """Images/s of :func:`alexnet_lab.keras.pipeline.make_batches` (a ``tf.data`` pipeline) with the paper's
    augmentation, in steady state. ``spec``: ``preset``, ``quick``, ``batch_size``, optionally ``repetitions``."""
    from alexnet_lab import data
    from alexnet_lab.data import preprocessing
    from alexnet_lab.keras import pipeline as keras_pipeline

    plan = benchmark.pipeline_plan(spec)
    train, _ = data.random_dataset(plan.images, 1, plan.source_shape)
    pre = preprocessing.Preprocess.for_training(train, image_size=plan.image_size)
    rate, _ = measure.time_batches(
        lambda: keras_pipeline.make_batches(train, pre, batch_size=plan.batch_size, drop_last=True), plan.repetitions)
    return benchmark.pipeline_record("keras_pipeline.make_batches", rate, plan, pre)
