"""``alexnet-lab bench`` in PyTorch: the speed of one case, measured in this process.

Read this file beside :mod:`alexnet_lab.keras.benchmark`: both have :func:`model_case` (training
and inference images/s of the model for one path: ``baseline``, ``default`` or a candidate),
:func:`pipeline_case` (images/s of the input pipeline) and :func:`steps` (one training and one
inference step as callables). What is measured and how: :mod:`alexnet_lab.core.benchmark`.

* the **baseline** is float32, NCHW, eager: the code a tutorial would write;
* the **default** path makes exactly the choices :func:`alexnet_lab.torch.training.fit` makes on
  this device (:mod:`alexnet_lab.torch.precision`: mixed precision, channels-last, ``torch.compile``);
* a **candidate** switches one speed-up on (``options``: ``precision``, ``channels_last``, ``compile``).

The training step is :func:`alexnet_lab.torch.training.train_step`, the one ``fit`` takes: the
benchmark times the course's own step, not a copy of it.
"""

from __future__ import annotations

import torch

from alexnet_lab.core import benchmark, measure
from alexnet_lab.torch import models as torch_models
from alexnet_lab.torch import optim as torch_optim
from alexnet_lab.torch import precision as torch_precision
from alexnet_lab.torch import training as torch_training

__all__ = ["steps", "model_case", "pipeline_case"]


def steps(model, x, y, *, precision: torch_precision.Precision | None = None):
    """One training step and one inference step of ``model`` on the fixed batch ``(x, y)``, as callables.

    The training step is :func:`~alexnet_lab.torch.training.train_step` with SGD
    (:func:`alexnet_lab.torch.optim.make_optimizer`: lr 1e-3, momentum 0.9, weight decay 5e-4) on the
    cross-entropy; ``precision`` (a :class:`~alexnet_lab.torch.precision.Precision`, None: float32)
    decides the autocast type, and a gradient scaler is used when it asks for one (float16).
    The inference step is a forward pass under ``torch.inference_mode`` and the same autocast. Both work
    on the model as given (compiled or channels-last models included), in the mode it is in: call
    ``model.train()`` or ``model.eval()`` before timing them.
    """
    device_type = x.device.type
    optimizer = torch_optim.make_optimizer(model, "sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device_type) if precision is not None and precision.grad_scaling else None
    autocast = precision is not None and precision.autocast
    dtype = precision.torch_dtype if autocast else None

    def train_step():
        torch_training.train_step(model, x, y, optimizer, precision=precision, scaler=scaler)

    def infer_step():
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=autocast):
            model(x)

    return train_step, infer_step


def _choices(spec: dict, device) -> tuple[torch_precision.Precision, bool, bool]:
    """``(precision, channels_last, compile)`` of the case's path on ``device``."""
    options = spec.get("options", {})
    if spec["path"] == "baseline":
        return torch_precision.choose_precision(device, False), False, False
    if spec["path"] == "default":  # exactly the choices torch_training.fit makes
        precision = torch_precision.choose_precision(device, "auto")
        return (precision, torch_precision.choose_channels_last(device, "auto", precision)[0],
                torch_precision.choose_compile(device, "auto")[0])
    return (torch_precision.choose_precision(device, options.get("precision", False)),
            options.get("channels_last", False), options.get("compile", False))


def model_case(spec: dict) -> dict:
    """Training and inference speed of the PyTorch model for one path (baseline, default or a candidate).

    ``spec``: ``preset``, ``path``, ``quick``, and optionally ``options`` (a candidate's), ``device``,
    ``threads``, ``batch_size``, ``warmup``, ``repetitions``. Returns the case's record (without the
    fields of the whole run, added by :mod:`alexnet_lab.cli.bench`).
    """
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    dev = torch_precision.torch_device(spec.get("device"), announce=False)
    rss_start = measure.rss_mib()
    precision, channels_last, compiled = _choices(spec, dev)
    batch_size, warmup, repetitions = benchmark.case_settings(spec, gpu=dev.type == "cuda")

    torch.manual_seed(0)
    model = torch_models.alexnet(spec["preset"]).to(dev)
    c, h, w = model.input_shape
    x = torch.randn(batch_size, c, h, w, device=dev)
    y = torch.randint(0, min(10, model.fc8.out_features), (batch_size,), device=dev)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    forward = torch.compile(model) if compiled else model
    train_step, infer_step = steps(forward, x, y, precision=precision)

    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    model.train()
    train = measure.time_steps(train_step, warmup=warmup, repetitions=repetitions, sync=sync)
    model.eval()
    infer = measure.time_steps(infer_step, warmup=warmup, repetitions=repetitions, sync=sync)
    if dev.type == "cuda":
        peak, how = benchmark.gpu_peak_flops(torch.cuda.get_device_name(dev), precision.dtype)
        gpu_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak, how = benchmark.this_cpu_peak_flops() if dev.type == "cpu" else (None, f"unknown for {dev.type}")
        gpu_mib = None
    return {
        "precision": precision.dtype, "channels_last": channels_last, "compiled": compiled,
        "compiler": "torch.compile" if compiled else None,
        "device": torch_precision.describe_device(dev), "device_type": dev.type, "threads": torch.get_num_threads(),
        "framework_version": torch.__version__, "batch_size": batch_size, "warmup_steps": warmup,
        "repetitions": repetitions, **measure.step_rates("train", train, batch_size),
        **measure.step_rates("infer", infer, batch_size),
        "peak_flop_per_s": peak, "peak_estimate": how, "rss_after_import_mib": rss_start, "gpu_peak_mib": gpu_mib,
    }


def pipeline_case(spec: dict) -> dict:
    """Images/s of :func:`alexnet_lab.torch.pipeline.make_batches` (no worker processes, as in the notebooks)
    with the paper's augmentation, in steady state. ``spec``: ``preset``, ``quick``, ``batch_size``,
    optionally ``repetitions``."""
    from alexnet_lab import data
    from alexnet_lab.data import preprocessing
    from alexnet_lab.torch import pipeline as torch_pipeline

    plan = benchmark.pipeline_plan(spec)
    train, _ = data.random_dataset(plan.images, 1, plan.source_shape)
    pre = preprocessing.Preprocess.for_training(train, image_size=plan.image_size)
    rate, _ = measure.time_batches(
        lambda: torch_pipeline.make_batches(train, pre, batch_size=plan.batch_size, drop_last=True), plan.repetitions)
    return benchmark.pipeline_record("torch_pipeline.make_batches(num_workers=0)", rate, plan, pre)
