"""``alexnet-lab bench``: how fast does AlexNet train and predict here, in Keras and in PyTorch?

One run measures, side by side, for the ``classic`` preset (227×227, 1000 classes) and the
``cifar10`` preset (32×32):

* **baseline**: the plain float32 code a tutorial would write (PyTorch: NCHW tensors, no
  autocast, no compilation; Keras: the ``float32`` policy, ``jit_compile=False``);
* **default**: what the course's ``fit`` functions do on this hardware, decided by
  :mod:`alexnet_lab.devices` (mixed precision, channels-last, ``torch.compile``) and by
  :func:`alexnet_lab.keras_training.choose_policy` and :func:`~alexnet_lab.keras_training.choose_jit_compile` (XLA);
* with ``--candidates``, every speed-up on its own (bfloat16, channels-last, ``torch.compile``,
  XLA, ...): the evidence behind the defaults' rules;
* the **input pipeline** (``pipelines.torch_loader`` / ``pipelines.tf_dataset`` with the
  paper's augmentation) in images/s, next to the training speed it has to keep up with.

For each case it reports training and inference images/s, the achieved FLOP/s and the fraction
of the machine's peak that is, and the peak memory. Each case runs in its own Python process,
so that its memory peak is its own and no framework state (a global dtype policy, compiled
graphs, allocator caches) leaks into the next case.

How the numbers are made
------------------------
* **images/s**: batch size / the *median* time of one step over ``repetitions`` timed steps,
  after ``warmup`` untimed ones (they include one-time costs: tracing, compilation, memory
  allocation; their total is recorded as ``warmup_s``). A training step is forward, backward
  and an SGD update (momentum 0.9, weight decay 5e-4); an inference step is a forward pass in
  evaluation mode. The images are random tensors already on the device: this measures the model,
  the input pipeline is measured on its own.
* **ratios** (``train_speedup``, ``infer_speedup``) divide by the baseline of the same run,
  framework and preset; ``train_cpu_speedup`` and ``infer_cpu_speedup`` are the same ratios in
  CPU time per image.
* **CPU time per image** (``train_cpu_s_per_image``): the process's CPU time over the timed
  steps. On a busy machine the wall-clock figures drop with the load, the CPU time much less.
  On a CPU, ``train_core_peak_fraction`` divides the FLOPs per CPU-second by one core's peak:
  the efficiency of the work itself, a lower bound (threads waiting for each other also count
  as CPU time).
* **FLOPs per image**: inference = 2 × the multiply-accumulates (MACs) of the convolutions and
  dense layers (from :func:`alexnet_lab.architecture.layer_table`); training = 3 × inference
  (the backward pass costs about twice the forward: gradients for the inputs and for the weights).
  Pooling, ReLU, LRN and the optimizer are not counted: they are a few percent.
* **peak FLOP/s**: for a CPU, physical cores × clock × FLOPs per cycle per core (AVX2 with FMA:
  8 float32 lanes × 2 FMA units × 2 FLOPs = 32), see :func:`cpu_peak_flops`; an *upper bound*. For
  a GPU, the vendor's dense peak for the precision used (:data:`GPU_PEAKS`). Every record says how
  its peak was estimated (``peak_estimate``).
* **peak memory**: the peak resident memory (:func:`peak_rss_bytes`) of the case's own process
  (everything: the framework's libraries, the model, the optimizer state, the activations), and the
  same minus the memory in use right after importing the framework. On a GPU, also the framework's
  peak of allocated GPU memory.
* **load average**: the machine's 1-minute load average before and after each case. Above the
  number of cores, other programs shared the CPU and every figure is low and noisy.

From Python::

    from alexnet_lab import benchmark
    records = benchmark.run(quick=True)
    print(benchmark.format_table(records))
    benchmark.write_json(records, "bench.json")
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import architecture
from .files import atomic_write_json

__all__ = [
    "FRAMEWORKS", "PRESETS", "PATHS", "CANDIDATES", "GPU_PEAKS", "Settings", "settings_for", "run",
    "flops_per_image", "cpu_peak_flops", "cpu_clock_mhz", "cpu_cores", "gpu_peak_flops", "format_table",
    "write_json", "register_cli", "main",
]

FRAMEWORKS = ("torch", "keras")
PRESETS = ("classic", "cifar10")
GPU_PRESETS = ("classic", "cifar10", "torchvision")  # torchvision: the 224×224 reference model
PATHS = ("baseline", "default")

# Every speed-up on its own, for --candidates. Options: precision ("bf16" or "fp16"), channels_last,
# compile (torch.compile) for PyTorch; precision and xla (jit_compile=True) for Keras.
CANDIDATES = {
    "torch": {
        "bf16": {"precision": "bf16"},
        "channels_last": {"channels_last": True},
        "bf16+channels_last": {"precision": "bf16", "channels_last": True},
        "compile": {"compile": True},
        "bf16+channels_last+compile": {"precision": "bf16", "channels_last": True, "compile": True},
    },
    "keras": {
        "mixed_bfloat16": {"precision": "bf16"},
        "xla": {"xla": True},
        "mixed_bfloat16+xla": {"precision": "bf16", "xla": True},
    },
}

# The stored images each preset's input pipeline starts from: ImageNet-like 256×256 photos cropped to
# 227 (or 224), CIFAR-10's own 32×32 images.
PIPELINE_SOURCES = {"classic": (256, 256, 3), "torchvision": (256, 256, 3), "cifar10": (32, 32, 3)}

# Dense (no sparsity) peak FLOP/s from NVIDIA's data sheets: (16-bit tensor cores, float32 without tensor cores).
# Looked up by a piece of the name torch/TensorFlow report; more specific names first.
GPU_PEAKS = (
    ("H200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51e12),
    ("H100", 989e12, 67e12),       # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312e12, 19.5e12),
    ("L40S", 362e12, 91.6e12),
    ("L4", 121e12, 30.3e12),
    ("V100", 125e12, 15.7e12),     # float16 only: no bfloat16
    ("T4", 65e12, 8.1e12),         # float16 only
)

RESULT_MARK = "ALEXNET-LAB-BENCH-RESULT "
DESCRIPTION = ("Training and inference images/s of AlexNet in Keras and PyTorch: the plain float32 baseline next "
               "to the course's default path, the input pipelines, peak memory and the fraction of peak FLOP/s.")


@dataclass(frozen=True)
class Settings:
    """How much to measure: batch size per preset, untimed warm-up steps, timed repetitions, pipeline batches."""

    batch_size: dict
    warmup: int
    repetitions: int
    pipeline_batches: int


def settings_for(quick: bool, gpu: bool = False) -> Settings:
    """The settings of a ``--quick`` run (about two minutes on 2 idle CPU cores) or a full one."""
    if gpu:  # a GPU needs big batches to be busy, and compiled models need several warm-up steps
        return Settings({"classic": 128, "torchvision": 128, "cifar10": 256}, warmup=3 if quick else 5,
                        repetitions=10 if quick else 30, pipeline_batches=8 if quick else 16)
    if quick:
        return Settings({"classic": 8, "torchvision": 8, "cifar10": 32}, warmup=1, repetitions=3, pipeline_batches=8)
    return Settings({"classic": 32, "torchvision": 32, "cifar10": 128}, warmup=2, repetitions=7, pipeline_batches=16)


# ---------------------------------------------------------------------------
# Arithmetic: FLOPs per image, the machine's peak
# ---------------------------------------------------------------------------
def flops_per_image(preset: str) -> tuple[int, int]:
    """``(training, inference)`` FLOPs for one image through ``alexnet(preset)``.

    Inference: 2 FLOPs (a multiply and an add) per multiply-accumulate of the convolutions and
    dense layers. Training: 3 × that, the forward pass plus a backward pass of about twice its cost.
    """
    macs = architecture.totals(architecture.layer_table(preset))["macs"]
    return 3 * 2 * macs, 2 * macs


def cpu_peak_flops(cores: int, mhz: float, flags) -> tuple[float, str]:
    """Float32 peak FLOP/s of ``cores`` CPU cores at ``mhz``, and how it was estimated.

    FLOPs per cycle per core = vector lanes × FLOPs per lane per cycle: 16 float32 lanes with
    AVX-512, 8 with AVX/AVX2, 4 with SSE; with FMA, two FMA units each doing a multiply and an
    add (4 FLOPs per lane), else one add and one multiply unit (2). Some CPUs have a single
    AVX-512 FMA unit, and all-core clocks under vector load are often lower: an upper bound.
    """
    flags = set(flags)
    if "avx512f" in flags:
        lanes, isa = 16, "AVX-512"
    elif "avx2" in flags or "avx" in flags:
        lanes, isa = 8, "AVX2" if "avx2" in flags else "AVX"
    else:
        lanes, isa = 4, "SSE"
    per_lane = 4 if "fma" in flags else 2
    per_cycle = lanes * per_lane
    peak = cores * mhz * 1e6 * per_cycle
    how = (f"{cores} core(s) × {mhz / 1000:.3f} GHz × {per_cycle} float32 FLOP/cycle ({isa}: {lanes} lanes × "
           + ("2 FMA units × 2 FLOPs" if per_lane == 4 else "1 add + 1 multiply") + f") = {peak / 1e9:.1f} GFLOP/s, "
           "an upper bound")
    return peak, how


def _parse_cpuinfo_mhz(text: str) -> float | None:
    """The highest ``cpu MHz`` in the text of ``/proc/cpuinfo`` (None if there is none)."""
    values = [float(line.split(":", 1)[1]) for line in text.splitlines()
              if line.startswith("cpu MHz") and ":" in line]
    return max(values) if values else None


def cpu_clock_mhz() -> tuple[float | None, str]:
    """The CPU clock in MHz and where it came from: cpufreq's maximum if the OS exposes it, else ``cpu MHz``."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return khz / 1000, "cpufreq's maximum clock"
    except (OSError, ValueError):
        pass
    try:
        mhz = _parse_cpuinfo_mhz(Path("/proc/cpuinfo").read_text())
    except OSError:
        mhz = None
    return mhz, "'cpu MHz' in /proc/cpuinfo (the clock when read; boost clocks can be higher)"


def cpu_cores() -> int:
    """Physical cores this process may use: its logical CPUs divided by the hardware threads per core."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        per_core = int(info["siblings"]) // int(info["cpu cores"])
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        per_core = 1
    return max(1, logical // max(1, per_core))


def _this_cpu_peak() -> tuple[float | None, str]:
    from . import devices

    mhz, source = cpu_clock_mhz()
    if mhz is None:
        return None, "unknown: no CPU clock found"
    peak, how = cpu_peak_flops(cpu_cores(), mhz, devices.cpu_flags())
    return peak, f"{how}; clock from {source}"


def gpu_peak_flops(name: str, dtype: str) -> tuple[float | None, str]:
    """The vendor's dense peak FLOP/s of the GPU called ``name`` for ``dtype`` (float32, bfloat16, float16)."""
    for key, half, single in GPU_PEAKS:
        if key.lower() in name.lower():
            if dtype == "float32":
                return single, (f"{name}: {single / 1e12:g} TFLOP/s float32 without tensor cores (NVIDIA data sheet; "
                                "cuDNN may use TF32 tensor cores for float32 convolutions, so this can exceed 100%)")
            return half, f"{name}: {half / 1e12:g} TFLOP/s dense {dtype} on tensor cores (NVIDIA data sheet)"
    return None, f"unknown: {name!r} is not in alexnet_lab.benchmark.GPU_PEAKS"


# ---------------------------------------------------------------------------
# One case, in its own process
# ---------------------------------------------------------------------------
def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _rss_mib() -> float | None:
    """This process's resident memory now, in MiB (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_bytes() -> int | None:
    """This process's own peak resident memory so far, in bytes (None where it cannot be read, e.g. Windows).

    On Linux it is ``VmHWM`` from ``/proc/self/status``. ``ru_maxrss`` would not do there: Linux keeps it
    across ``execve``, so a process started from a large one (pytest after many tests, 5 GB) reports the
    parent's peak as its own. Elsewhere it is ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (see :func:`peak_rss_bytes`)."""
    peak = peak_rss_bytes()
    return None if peak is None else peak / 2**20


def time_steps(step, *, warmup: int, repetitions: int, sync=lambda: None) -> dict:
    """Run ``step()`` ``warmup`` times untimed, then ``repetitions`` times timed; wall and CPU seconds per step."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    wall, cpu = [], []
    for _ in range(repetitions):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"warmup_s": warmup_s, "step_s": wall, "cpu_s": cpu}


def _rates(prefix: str, timing: dict, batch_size: int) -> dict:
    return {f"{prefix}_images_per_s": batch_size / statistics.median(timing["step_s"]),
            f"{prefix}_cpu_s_per_image": statistics.median(timing["cpu_s"]) / batch_size,
            f"{prefix}_step_s": [round(t, 5) for t in timing["step_s"]],
            f"{prefix}_warmup_s": round(timing["warmup_s"], 3)}


def torch_steps(model, x, y, *, dtype=None, autocast: bool = False, grad_scaling: bool = False):
    """One training step and one inference step of ``model`` on the fixed batch ``(x, y)``, as callables.

    The training step is SGD (momentum 0.9, weight decay 5e-4) on the cross-entropy, under autocast to
    ``dtype`` when ``autocast`` is true, with a gradient scaler when ``grad_scaling`` is true (float16).
    Both steps work on the model as given (compiled or channels-last models included).
    """
    import torch
    import torch.nn.functional as F

    device_type = x.device.type
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device_type, enabled=grad_scaling)

    def train_step():
        with torch.autocast(device_type, dtype=dtype, enabled=autocast):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer_step():
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=autocast):
            model(x)

    return train_step, infer_step


def _torch_model_case(spec: dict) -> dict:
    """Training and inference speed of the PyTorch model for one path (baseline, default or a candidate)."""
    import torch

    from . import devices, torch_models

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    dev = devices.torch_device(spec.get("device"), announce=False)
    rss_start = _rss_mib()
    options = spec.get("options", {})
    if spec["path"] == "baseline":
        precision = devices.choose_precision(dev, False)
        channels_last, compiled = False, False
    elif spec["path"] == "default":  # exactly the choices torch_training.fit makes
        precision = devices.choose_precision(dev, "auto")
        channels_last = devices.choose_channels_last(dev, "auto", precision)[0]
        compiled = devices.choose_compile(dev, "auto")[0]
    else:
        precision = devices.choose_precision(dev, options.get("precision", False))
        channels_last, compiled = options.get("channels_last", False), options.get("compile", False)

    settings = settings_for(spec["quick"], gpu=dev.type == "cuda")
    batch_size = spec.get("batch_size") or settings.batch_size[spec["preset"]]
    warmup = settings.warmup if spec.get("warmup") is None else spec["warmup"]
    repetitions = spec.get("repetitions") or settings.repetitions
    torch.manual_seed(0)
    model = torch_models.alexnet(spec["preset"]).to(dev)
    c, h, w = model.input_shape
    x = torch.randn(batch_size, c, h, w, device=dev)
    y = torch.randint(0, min(10, model.fc8.out_features), (batch_size,), device=dev)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    forward = torch.compile(model) if compiled else model
    train_step, infer_step = torch_steps(forward, x, y, dtype=precision.torch_dtype, autocast=precision.autocast,
                                         grad_scaling=precision.grad_scaling)

    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    model.train()
    train = time_steps(train_step, warmup=warmup, repetitions=repetitions, sync=sync)
    model.eval()
    infer = time_steps(infer_step, warmup=warmup, repetitions=repetitions, sync=sync)
    if dev.type == "cuda":
        peak, how = gpu_peak_flops(torch.cuda.get_device_name(dev), precision.dtype)
        gpu_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak, how = _this_cpu_peak() if dev.type == "cpu" else (None, f"unknown for {dev.type}")
        gpu_mib = None
    return {
        "precision": precision.dtype, "channels_last": channels_last, "compiled": compiled,
        "compiler": "torch.compile" if compiled else None,
        "device": devices.describe_device(dev), "device_type": dev.type, "threads": torch.get_num_threads(),
        "framework_version": torch.__version__, "batch_size": batch_size, "warmup_steps": warmup,
        "repetitions": repetitions, **_rates("train", train, batch_size), **_rates("infer", infer, batch_size),
        "peak_flop_per_s": peak, "peak_estimate": how, "rss_after_import_mib": rss_start, "gpu_peak_mib": gpu_mib,
    }


def _keras_model_case(spec: dict) -> dict:
    """Training and inference speed of the Keras model for one path (baseline, default or a candidate)."""
    import tensorflow as tf

    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    import keras

    from . import keras_models, keras_training

    rss_start = _rss_mib()
    options = spec.get("options", {})
    if spec["path"] == "baseline":
        policy, jit_compile = "float32", False
    elif spec["path"] == "default":  # exactly the choices keras_training.fit makes
        policy, jit_compile = keras_training.choose_policy("auto")[0], keras_training.choose_jit_compile("auto")[0]
    else:
        policy = keras_training.choose_policy(options.get("precision", False))[0]
        jit_compile = options.get("xla", False)
    gpus = tf.config.list_physical_devices("GPU")
    settings = settings_for(spec["quick"], gpu=bool(gpus))
    batch_size = spec.get("batch_size") or settings.batch_size[spec["preset"]]
    warmup = settings.warmup if spec.get("warmup") is None else spec["warmup"]
    repetitions = spec.get("repetitions") or settings.repetitions

    keras.mixed_precision.set_global_policy(policy)  # before building: the policy belongs to the model
    try:
        keras.utils.set_random_seed(0)
        model = keras_models.alexnet(spec["preset"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    h, w, c = model.inputs[0].shape[1:]
    x = tf.random.normal((batch_size, h, w, c))
    y = tf.random.uniform((batch_size,), maxval=min(10, model.outputs[0].shape[-1]), dtype=tf.int64)
    model.compile(optimizer=keras_training.make_optimizer("sgd", lr=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    xla = bool(model.jit_compile)  # "auto" resolved: Keras' own choice
    train = time_steps(lambda: model.train_on_batch(x, y), warmup=warmup, repetitions=repetitions)
    infer = time_steps(lambda: model.predict_on_batch(x), warmup=warmup, repetitions=repetitions)
    dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[policy]
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        peak, how = gpu_peak_flops(details.get("device_name", "GPU"), dtype)
        gpu_mib = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        peak, how = _this_cpu_peak()
        gpu_mib = None
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return {
        "precision": dtype, "policy": policy, "channels_last": True, "compiled": xla,
        "compiler": "XLA" if xla else None,
        "device": keras_training.device_description(), "device_type": "cuda" if gpus else "cpu", "threads": threads,
        "framework_version": f"{keras.__version__} (tensorflow {tf.__version__})", "batch_size": batch_size,
        "warmup_steps": warmup, "repetitions": repetitions, **_rates("train", train, batch_size),
        **_rates("infer", infer, batch_size), "peak_flop_per_s": peak, "peak_estimate": how,
        "rss_after_import_mib": rss_start, "gpu_peak_mib": gpu_mib,
    }


def _pipeline_case(spec: dict) -> dict:
    """Images/s of the course's input pipeline with the paper's augmentation, in steady state."""
    from . import data, pipelines

    shape = PIPELINE_SOURCES[spec["preset"]]
    size = architecture.get_preset(spec["preset"]).image_size
    settings = settings_for(spec["quick"])
    batch_size = spec["batch_size"]
    repetitions = spec.get("repetitions") or settings.repetitions
    n = batch_size * (settings.pipeline_batches + 1)
    train, _ = data.random_dataset(n, 1, shape)
    pre = pipelines.Preprocess.for_training(train, image_size=size if size != shape[0] else None)
    if spec["framework"] == "torch":
        name = "pipelines.torch_loader(num_workers=0)"

        def make():
            return pipelines.torch_loader(train, pre, batch_size=batch_size, drop_last=True)
    else:
        name = "pipelines.tf_dataset"

        def make():
            return pipelines.tf_dataset(train, pre, batch_size=batch_size, drop_last=True)
    times = []
    for _ in range(repetitions):
        batches = iter(make())
        next(batches)  # start-up: the first plan, threads, prefetching
        start, counted = time.perf_counter(), 0
        for _, labels in batches:
            counted += len(labels)
        times.append(time.perf_counter() - start)
    return {"pipeline": name, "pipeline_images_per_s": counted / statistics.median(times),
            "pipeline_batch_size": batch_size, "pipeline_source_shape": list(shape),
            "pipeline_augmentation": f"crop={pre.crop} (padding {pre.crop_padding}), flip, PCA lighting "
                                     f"{pre.lighting_std}"}


def _measure(spec: dict) -> dict:
    """Run one case in this process: the record of one measurement."""
    kind, framework = spec.get("kind"), spec.get("framework")
    if kind == "pipeline":
        measure = _pipeline_case
    elif kind == "model" and framework in FRAMEWORKS:
        measure = _torch_model_case if framework == "torch" else _keras_model_case
    else:
        raise ValueError(f"Unknown case: kind {kind!r}, framework {framework!r}.")
    load_start = _load()
    record = measure(spec)
    record.update(load_average_start=load_start, load_average_end=_load(), peak_rss_mib=_peak_rss_mib())
    if record.get("rss_after_import_mib") is not None and record["peak_rss_mib"] is not None:
        record["peak_rss_above_import_mib"] = record["peak_rss_mib"] - record["rss_after_import_mib"]
    return record


def _child_main() -> None:
    """Entry point of a case's process: read the spec (JSON) from stdin, print the record after a marker."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    record = _measure(json.loads(sys.stdin.read()))
    print(RESULT_MARK + json.dumps(record), flush=True)


def _run_child(spec: dict, timeout: float | None = None) -> dict:
    """Measure ``spec`` in a fresh Python process; a failure becomes a record with an ``error``."""
    root = str(Path(__file__).resolve().parent.parent)  # so that a clone runs without installing
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    code = "from alexnet_lab.benchmark import _child_main; _child_main()"
    try:
        done = subprocess.run([sys.executable, "-c", code], input=json.dumps(spec), capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    last = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
    return {"error": f"exit status {done.returncode}: " + (" | ".join(last) or "no output")}


# ---------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------
def _cases(framework: str, candidates) -> list[tuple[str, str, dict]]:
    """``(path, variant, options)`` of every case to measure for ``framework``.

    ``candidates``: False (none), True (all of :data:`CANDIDATES`), or the names of some.
    """
    cases = [("baseline", "float32", {}), ("default", "default", {})]
    for name, options in CANDIDATES[framework].items():
        if candidates is True or (candidates and name in candidates):
            cases.append(("candidate", name, options))
    return cases


def _variant_name(record: dict) -> str:
    """What a record's path actually did, e.g. ``float32``, ``bfloat16+channels_last+torch.compile``."""
    if "error" in record:
        return "?"
    parts = [record["precision"]]
    if record["framework"] == "torch" and record["channels_last"]:
        parts.append("channels_last")
    if record["compiled"]:
        parts.append(record["compiler"])
    return "+".join(parts)


def _add_derived(records: list[dict]) -> None:
    """FLOP/s, fractions of the peak, and ratios to the baseline of the same framework and preset."""
    baselines = {(r["framework"], r["preset"]): r for r in records if r["path"] == "baseline" and "error" not in r}
    for r in records:
        if "error" in r:
            continue
        train_flops, infer_flops = flops_per_image(r["preset"])
        r.update(train_flop_per_image=train_flops, infer_flop_per_image=infer_flops,
                 train_flop_per_s=r["train_images_per_s"] * train_flops,
                 infer_flop_per_s=r["infer_images_per_s"] * infer_flops)
        peak = r.get("peak_flop_per_s")
        r["train_peak_fraction"] = r["train_flop_per_s"] / peak if peak else None
        r["infer_peak_fraction"] = r["infer_flop_per_s"] / peak if peak else None
        if r.get("device_type") == "cpu" and peak and r.get("train_cpu_s_per_image"):
            # Per CPU-second: what the work got out of the cores it had, whatever else ran beside it.
            per_core = peak / r["cpu_cores"]
            r["train_flop_per_cpu_s"] = train_flops / r["train_cpu_s_per_image"]
            r["train_core_peak_fraction"] = r["train_flop_per_cpu_s"] / per_core
        base = baselines.get((r["framework"], r["preset"]))
        for mode in ("train", "infer"):
            r[f"{mode}_speedup"] = r[f"{mode}_images_per_s"] / base[f"{mode}_images_per_s"] if base else None
            # The same ratio in CPU time per image: steadier than wall-clock time on a busy machine.
            r[f"{mode}_cpu_speedup"] = (base[f"{mode}_cpu_s_per_image"] / r[f"{mode}_cpu_s_per_image"]
                                        if base and r.get(f"{mode}_cpu_s_per_image") else None)
        if r.get("pipeline_images_per_s"):
            r["pipeline_over_train"] = r["pipeline_images_per_s"] / r["train_images_per_s"]


def run(*, frameworks=FRAMEWORKS, presets=None, quick: bool = False, candidates: bool = False,
        pipeline: bool = True, device: str | None = None, batch_size: int | None = None, warmup: int | None = None,
        repetitions: int | None = None, threads: int | None = None, timeout: float | None = None,
        log=None) -> list[dict]:
    """Measure every case, each in its own process; returns one record (a dict) per measurement.

    Args:
        frameworks: ``"torch"`` and/or ``"keras"``.
        presets: AlexNet presets; default ``classic`` and ``cifar10`` (plus ``torchvision``, the
            224×224 model, with ``device="cuda"``).
        quick: small batches and few repetitions (about two minutes on 2 idle CPU cores).
        candidates: also measure speed-ups on their own: True for all of :data:`CANDIDATES`, or
            a list of their names (e.g. ``["compile", "xla"]``). bfloat16 is slow on CPUs
            without bfloat16 hardware, where it is emulated.
        pipeline: also measure the input pipeline of each framework and preset.
        device: PyTorch's device (``"cuda"``, ``"cpu"``, ...); None picks the best one. Keras uses
            the GPU whenever TensorFlow sees one.
        batch_size, warmup, repetitions: override the settings of :func:`settings_for`.
        threads: CPU threads per framework (default: the framework's own choice, one per core).
        timeout: seconds after which one case is abandoned (recorded with an ``error``).
        log: called with one line of text per finished case (default: print to stderr).

    Every record has ``framework``, ``preset``, ``path`` (``baseline``, ``default`` or ``candidate``),
    ``variant``, ``train_images_per_s`` and ``infer_images_per_s``; see the module docstring for the rest.
    """
    _check_arguments(frameworks, presets, candidates, batch_size, warmup, repetitions, threads)
    if presets is None:
        presets = GPU_PRESETS if device is not None and str(device).startswith("cuda") else PRESETS
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    common = {"quick": quick, "device": device, "batch_size": batch_size, "warmup": warmup,
              "repetitions": repetitions, "threads": threads}
    run_info = {"run_started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick, "cpu": _cpu_name(),
                "cpu_cores": cpu_cores(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
                "platform": platform.platform(), "run_load_average_start": _load()}
    records = []
    for framework in frameworks:
        for preset in presets:
            group = []
            for path, variant, options in _cases(framework, candidates):
                spec = dict(common, kind="model", framework=framework, preset=preset, path=path, options=options)
                record = {"framework": framework, "preset": preset, "path": path, "variant": variant,
                          "image_size": architecture.get_preset(preset).image_size,
                          **_run_child(spec, timeout)}
                if path == "default":
                    record["variant"] = _variant_name(record)
                group.append(record)
                log(_progress_line(record))
            default = next((r for r in group if r["path"] == "default" and "error" not in r), None)
            if pipeline and default is not None:
                spec = dict(common, kind="pipeline", framework=framework, preset=preset,
                            batch_size=default["batch_size"])
                measured = _run_child(spec, timeout)
                if "error" in measured:
                    measured = {"pipeline_error": measured["error"]}
                for record in group:  # the pipeline feeds every path of this framework and preset
                    record.update({k: v for k, v in measured.items() if k.startswith("pipeline")},
                                  pipeline_load_average=measured.get("load_average_start"))
                log(f"  {framework} {preset} input pipeline: "
                    + (f"{measured['pipeline_images_per_s']:.1f} img/s" if "pipeline_images_per_s" in measured
                       else f"FAILED ({measured['pipeline_error']})"))
            records += group
    run_info["run_load_average_end"] = _load()
    for record in records:
        record.update(run_info)
    _add_derived(records)
    return records


def _check_arguments(frameworks, presets, candidates, batch_size, warmup, repetitions, threads) -> None:
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown or not frameworks:
        raise ValueError(f"Unknown or no framework(s) {sorted(unknown)}: choose from {', '.join(FRAMEWORKS)}.")
    if presets is not None:
        known = [p for p in architecture.preset_names() if p in PIPELINE_SOURCES]
        if not presets or set(presets) - set(known):
            raise ValueError(f"Unknown or no preset(s) {sorted(set(presets) - set(known))}: the benchmark knows "
                             f"{', '.join(known)}.")
    if not isinstance(candidates, bool):
        known = {name for options in CANDIDATES.values() for name in options}
        if set(candidates) - known:
            raise ValueError(f"Unknown candidate(s) {sorted(set(candidates) - known)}: choose from "
                             f"{', '.join(sorted(known))}.")
    for name, value, least in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repetitions", repetitions, 1),
                               ("threads", threads, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")


def _cpu_name() -> str:
    from . import devices

    return devices.cpu_name()


# ---------------------------------------------------------------------------
# Output: the table and the JSON file
# ---------------------------------------------------------------------------
def _progress_line(r: dict) -> str:
    head = f"  {r['framework']} {r['preset']} {r['path']} {r['variant']}"
    if "error" in r:
        return f"{head}: FAILED ({r['error']})"
    return (f"{head}: train {r['train_images_per_s']:.1f} img/s, inference {r['infer_images_per_s']:.1f} img/s "
            f"(batch {r['batch_size']}, load average {r['load_average_start']} -> {r['load_average_end']})")


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(records: list[dict]) -> str:
    """The records as a text table, followed by the devices, the peak estimates and the load averages."""
    header = (f"{'framework':<9} {'model':<16} {'path':<9} {'variant':<34} {'batch':>5} {'train img/s':>11} "
              f"{'x base':>6} {'CPU ms/img':>10} {'infer img/s':>11} {'x base':>6} {'train GFLOP/s':>13} {'% peak':>6} "
              f"{'% core peak':>11} "
              f"{'peak RSS MiB':>12} {'pipeline img/s':>14} {'pipe/train':>10}")
    lines = [header, "-" * len(header)]
    for r in records:
        model = f"{r['preset']} {r['image_size']}"
        if "error" in r:
            lines.append(f"{r['framework']:<9} {model:<16} {r['path']:<9} {r['variant']:<34} FAILED: {r['error']}")
            continue
        fraction, core = r.get("train_peak_fraction"), r.get("train_core_peak_fraction")
        lines.append(
            f"{r['framework']:<9} {model:<16} {r['path']:<9} {r['variant']:<34} {r['batch_size']:>5} "
            f"{r['train_images_per_s']:>11.1f} {_fmt(r.get('train_speedup'), '.2f'):>6} "
            f"{1000 * r['train_cpu_s_per_image']:>10.1f} "
            f"{r['infer_images_per_s']:>11.1f} {_fmt(r.get('infer_speedup'), '.2f'):>6} "
            f"{r['train_flop_per_s'] / 1e9:>13.1f} {_fmt(fraction and 100 * fraction, '.1f'):>6} "
            f"{_fmt(core and 100 * core, '.1f'):>11} "
            f"{_fmt(r.get('peak_rss_mib'), '.0f'):>12} {_fmt(r.get('pipeline_images_per_s'), '.0f'):>14} "
            f"{_fmt(r.get('pipeline_over_train'), '.1f'):>10}")
    ok = [r for r in records if "error" not in r]
    notes = sorted({f"device: {r['framework']} {r['framework_version']} on {r['device']}"
                    + ("" if "threads" in r["device"] else f", {r['threads']} threads") for r in ok})
    notes += sorted({f"peak: {r['peak_estimate']}" for r in ok})
    loads = [v for r in ok for v in (r.get("load_average_start"), r.get("load_average_end")) if v is not None]
    if loads:
        notes.append(f"load average while measuring: {min(loads)} to {max(loads)} on {records[0]['cpu_cores']} "
                     "core(s); above the core count, other programs shared the CPU and the figures are low and noisy")
    if ok:
        quick = "quick settings, " if ok[0]["quick"] else ""
        notes.append(f"{quick}medians over {ok[0]['repetitions']} timed steps after {ok[0]['warmup_steps']} warm-up "
                     "step(s); x base: ratio to the float32 baseline of the same run; CPU ms/img: the process's "
                     "CPU time per training image (less sensitive to other programs' load than img/s); % core peak: "
                     "training FLOPs per CPU-second over one core's peak")
    return "\n".join(lines + notes)


def write_json(records: list[dict], path: str | os.PathLike) -> None:
    """Write the records to ``path`` as a JSON list, atomically: a failed write leaves no partial file."""
    atomic_write_json(path, records)


# ---------------------------------------------------------------------------
# The command line: alexnet-lab bench, benchmarks/bench.py
# ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``alexnet-lab bench`` (shared with ``benchmarks/bench.py``)."""
    parser.add_argument("--quick", action="store_true", help="small batches, 3 timed steps: ~2 minutes on 2 idle cores")
    parser.add_argument("--json", metavar="PATH", help="also write one record per measurement to this JSON file")
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument("--presets", nargs="+", choices=[p for p in architecture.preset_names()
                                                         if p in PIPELINE_SOURCES],
                        help="default: classic cifar10 (and torchvision with --device cuda)")
    names = sorted({name for options in CANDIDATES.values() for name in options})
    parser.add_argument("--candidates", nargs="*", metavar="NAME", choices=names,
                        help="also measure each speed-up alone, or only those named (" + ", ".join(names)
                        + "); bf16 is slow on CPUs without bf16 hardware")
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false", help="skip the input pipelines")
    parser.add_argument("--device", help="PyTorch device: cuda, cpu, mps (default: the best available)")
    parser.add_argument("--batch-size", type=int, help="one batch size for every case")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing")
    parser.add_argument("--repetitions", type=int, help="timed steps (the figures are their median)")
    parser.add_argument("--threads", type=int, help="CPU threads per framework (default: one per core)")
    parser.add_argument("--timeout", type=float, help="give up on one case after this many seconds")


def _candidates_from_args(value: list[str] | None):
    """``--candidates`` alone means all of them (True); with names, those; absent, none (False)."""
    if value is None:
        return False
    return True if not value else list(value)


def _bench(args: argparse.Namespace) -> int:
    if args.json is not None and not Path(args.json).resolve().parent.is_dir():
        raise ValueError(f"--json {args.json}: the folder {Path(args.json).resolve().parent} does not exist; "
                         "create it first or choose another path.")
    started = time.perf_counter()
    candidates = _candidates_from_args(args.candidates)
    records = run(frameworks=args.frameworks, presets=args.presets, quick=args.quick, candidates=candidates,
                  pipeline=args.pipeline, device=args.device, batch_size=args.batch_size, warmup=args.warmup,
                  repetitions=args.repetitions, threads=args.threads, timeout=args.timeout)
    print(format_table(records))
    print(f"measured in {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        write_json(records, args.json)
        print(f"wrote {len(records)} records to {args.json}")
    return 1 if any("error" in r for r in records) else 0


def register_cli(subparsers) -> None:
    """Add ``alexnet-lab bench`` to the ``alexnet-lab`` command."""
    parser = subparsers.add_parser("bench", help="training/inference images/s: float32 baseline vs the defaults",
                                   description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=_bench)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/bench.py [options]``: the same as ``alexnet-lab bench [options]``."""
    parser = argparse.ArgumentParser(prog="bench.py", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _bench(args)
    except ValueError as e:
        print(f"bench.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
