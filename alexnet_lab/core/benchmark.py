"""What ``alexnet-lab bench`` measures and how it reports it, without any framework.

The cases (which paths, which speed-ups, which settings), the arithmetic (FLOPs per image, the
machine's peak FLOP/s), the figures derived from the measurements, the table and the JSON file.
The measuring itself is in :mod:`alexnet_lab.torch.benchmark` and :mod:`alexnet_lab.keras.benchmark`
(one case each, with the same function names) and :mod:`alexnet_lab.core.measure`; the command,
which runs every case in its own process, is :mod:`alexnet_lab.cli.bench`.

How the numbers are made
------------------------
* **images/s**: batch size / the *median* time of one step over ``repetitions`` timed steps,
  after ``warmup`` untimed ones (they include one-time costs: tracing, compilation, memory
  allocation; their total is recorded as ``warmup_s``), by :func:`alexnet_lab.core.measure.time_steps`.
  A training step is forward, backward and an SGD update (momentum 0.9, weight decay 5e-4); an
  inference step is a forward pass in evaluation mode. The images are random tensors already on the
  device: this measures the model, the input pipeline is measured on its own.
* **ratios** (``train_speedup``, ``infer_speedup``) divide by the baseline of the same run,
  framework and preset; ``train_cpu_speedup`` and ``infer_cpu_speedup`` are the same ratios in
  CPU time per image.
* **CPU time per image** (``train_cpu_s_per_image``): the process's CPU time over the timed
  steps. On a busy machine the wall-clock figures drop with the load, the CPU time much less.
  On a CPU, ``train_core_peak_fraction`` divides the FLOPs per CPU-second by one core's peak:
  the efficiency of the work itself, a lower bound (threads waiting for each other also count
  as CPU time).
* **FLOPs per image**: inference = 2 × the multiply-accumulates (MACs) of the convolutions and
  dense layers (from :func:`alexnet_lab.core.architecture.layer_table`); training = 3 × inference
  (the backward pass costs about twice the forward: gradients for the inputs and for the weights).
  Pooling, ReLU, LRN and the optimizer are not counted: they are a few percent.
* **peak FLOP/s**: for a CPU, physical cores × clock × FLOPs per cycle per core (AVX2 with FMA:
  8 float32 lanes × 2 FMA units × 2 FLOPs = 32), see :func:`cpu_peak_flops`; an *upper bound*. For
  a GPU, the vendor's dense peak for the precision used (:data:`GPU_PEAKS`). Every record says how
  its peak was estimated (``peak_estimate``).
* **peak memory**: the peak resident memory (:func:`alexnet_lab.core.measure.peak_rss_bytes`) of the
  case's own process (everything: the framework's libraries, the model, the optimizer state, the
  activations), and the same minus the memory in use right after importing the framework. On a GPU,
  also the framework's peak of allocated GPU memory.
* **load average**: the machine's 1-minute load average before and after each case. Above the
  number of cores, other programs shared the CPU and every figure is low and noisy.
* **input pipeline**: images/s of ``make_batches`` with the paper's augmentation, in steady state
  (:func:`alexnet_lab.core.measure.time_batches`), from the stored images of :data:`PIPELINE_SOURCES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from alexnet_lab.core import architecture, hardware
from alexnet_lab.core.files import atomic_write_json

__all__ = [
    "FRAMEWORKS", "PRESETS", "GPU_PRESETS", "PATHS", "CANDIDATES", "PIPELINE_SOURCES", "GPU_PEAKS", "Settings",
    "settings_for", "case_settings", "flops_per_image", "cpu_peak_flops", "this_cpu_peak_flops", "gpu_peak_flops",
    "PipelinePlan", "pipeline_plan", "pipeline_record", "cases", "variant_name", "add_derived", "progress_line",
    "format_table", "write_json",
]

FRAMEWORKS = ("torch", "keras")
PRESETS = ("classic", "cifar10", "compact")  # compact: the laptop network of the training notebooks
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
PIPELINE_SOURCES = {"classic": (256, 256, 3), "torchvision": (256, 256, 3), "cifar10": (32, 32, 3),
                    "compact": (32, 32, 3)}

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


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
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
        return Settings({"classic": 128, "torchvision": 128, "cifar10": 256, "compact": 256}, warmup=3 if quick else 5,
                        repetitions=10 if quick else 30, pipeline_batches=8 if quick else 16)
    if quick:
        return Settings({"classic": 8, "torchvision": 8, "cifar10": 32, "compact": 32}, warmup=1, repetitions=3,
                        pipeline_batches=8)
    return Settings({"classic": 32, "torchvision": 32, "cifar10": 128, "compact": 128}, warmup=2, repetitions=7,
                    pipeline_batches=16)


def case_settings(spec: dict, *, gpu: bool) -> tuple[int, int, int]:
    """``(batch_size, warmup, repetitions)`` of one model case: the spec's own, else :func:`settings_for`'s.

    ``spec`` has ``quick`` and ``preset``, and may have ``batch_size``, ``warmup`` and ``repetitions``
    (None: the settings'). ``gpu``: whether the case runs on a GPU (bigger batches, more steps).
    """
    settings = settings_for(spec["quick"], gpu=gpu)
    batch_size = spec.get("batch_size") or settings.batch_size[spec["preset"]]
    warmup = settings.warmup if spec.get("warmup") is None else spec["warmup"]
    repetitions = spec.get("repetitions") or settings.repetitions
    return batch_size, warmup, repetitions


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


def this_cpu_peak_flops() -> tuple[float | None, str]:
    """:func:`cpu_peak_flops` of the cores this process may use (:mod:`alexnet_lab.core.hardware`), and how."""
    mhz, source = hardware.cpu_clock_mhz()
    if mhz is None:
        return None, "unknown: no CPU clock found"
    peak, how = cpu_peak_flops(hardware.cpu_cores(), mhz, hardware.cpu_flags())
    return peak, f"{how}; clock from {source}"


def gpu_peak_flops(name: str, dtype: str) -> tuple[float | None, str]:
    """The vendor's dense peak FLOP/s of the GPU called ``name`` for ``dtype`` (float32, bfloat16, float16)."""
    for key, half, single in GPU_PEAKS:
        if key.lower() in name.lower():
            if dtype == "float32":
                return single, (f"{name}: {single / 1e12:g} TFLOP/s float32 without tensor cores (NVIDIA data sheet; "
                                "cuDNN may use TF32 tensor cores for float32 convolutions, so this can exceed 100%)")
            return half, f"{name}: {half / 1e12:g} TFLOP/s dense {dtype} on tensor cores (NVIDIA data sheet)"
    return None, f"unknown: {name!r} is not in alexnet_lab.core.benchmark.GPU_PEAKS"


# ---------------------------------------------------------------------------
# The input pipeline's case
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelinePlan:
    """What one input-pipeline case measures: ``images`` stored images of ``source_shape`` (H, W, C), cropped
    or resized to ``image_size`` (None: kept), in batches of ``batch_size``, passed through ``repetitions`` times."""

    source_shape: tuple
    image_size: int | None
    batch_size: int
    repetitions: int
    images: int


def pipeline_plan(spec: dict) -> PipelinePlan:
    """The :class:`PipelinePlan` of a pipeline case (``spec``: ``preset``, ``quick``, ``batch_size``, ``repetitions``).

    Enough images for :attr:`Settings.pipeline_batches` counted batches after the uncounted first one.
    """
    shape = PIPELINE_SOURCES[spec["preset"]]
    size = architecture.get_preset(spec["preset"]).image_size
    settings = settings_for(spec["quick"])
    batch_size = spec["batch_size"]
    return PipelinePlan(source_shape=shape, image_size=size if size != shape[0] else None, batch_size=batch_size,
                        repetitions=spec.get("repetitions") or settings.repetitions,
                        images=batch_size * (settings.pipeline_batches + 1))


def pipeline_record(name: str, images_per_s: float, plan: PipelinePlan, preprocess) -> dict:
    """The fields of a pipeline case's record; ``preprocess``: the pipeline's
    :class:`~alexnet_lab.data.preprocessing.Preprocess` (its crop and lighting are recorded)."""
    return {"pipeline": name, "pipeline_images_per_s": images_per_s, "pipeline_batch_size": plan.batch_size,
            "pipeline_source_shape": list(plan.source_shape),
            "pipeline_augmentation": f"crop={preprocess.crop} (padding {preprocess.crop_padding}), flip, PCA lighting "
                                     f"{preprocess.lighting_std}"}


# ---------------------------------------------------------------------------
# The cases of a run, and the figures derived from their records
# ---------------------------------------------------------------------------
def cases(framework: str, candidates) -> list[tuple[str, str, dict]]:
    """``(path, variant, options)`` of every case to measure for ``framework``.

    ``candidates``: False (none), True (all of :data:`CANDIDATES`), or the names of some.
    """
    found = [("baseline", "float32", {}), ("default", "default", {})]
    for name, options in CANDIDATES[framework].items():
        if candidates is True or (candidates and name in candidates):
            found.append(("candidate", name, options))
    return found


def variant_name(record: dict) -> str:
    """What a record's path actually did, e.g. ``float32``, ``bfloat16+channels_last+torch.compile``."""
    if "error" in record:
        return "?"
    parts = [record["precision"]]
    if record["framework"] == "torch" and record["channels_last"]:
        parts.append("channels_last")
    if record["compiled"]:
        parts.append(record["compiler"])
    return "+".join(parts)


def add_derived(records: list[dict]) -> None:
    """FLOP/s, fractions of the peak, and ratios to the baseline of the same framework and preset (in place)."""
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


# ---------------------------------------------------------------------------
# Output: a progress line, the table and the JSON file
# ---------------------------------------------------------------------------
def progress_line(r: dict) -> str:
    """One finished case in one line, for the log while a run goes on."""
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
