"""Does mixed precision or channels-last memory make training faster here? Measured, not assumed.

For each framework and model this prints images/s of **training** steps (forward, backward,
SGD update) and of **inference** (forward only, dropout off), each next to a plain float32
baseline measured in the same run:

* PyTorch: float32 NCHW (baseline), bfloat16 autocast, channels-last, and both together;
  on a GPU without bfloat16 (compute capability < 8.0), float16 autocast with loss scaling
  stands in for bfloat16.
* Keras: the ``float32`` policy (baseline) and ``mixed_bfloat16`` (Keras models are
  channels-last already), both with Keras' own ``jit_compile`` choice (``"auto"``).

Models: the ``classic`` preset at 227×227 (1000 classes) and the ``cifar10`` preset at
32×32. The batches are random images of the right shape, already on the device: this measures
the model's arithmetic, not the input pipeline (see ``bench_pipelines.py`` for that). Every
figure is the median over timed steps, after warm-up steps that are not counted (they include
one-time costs: kernel selection, tracing, memory allocation). Each case is measured by the
``model_case`` of :mod:`alexnet_lab.torch.benchmark` or :mod:`alexnet_lab.keras.benchmark`, the code
of ``alexnet-lab bench``, but all of them in this one process (``alexnet-lab bench`` gives every
case a process of its own, and also reports CPU time, FLOP/s and memory).

``alexnet_lab.torch.precision`` turns mixed precision and channels-last on by default only where
this benchmark showed them faster: run it on your hardware before changing those rules.

Usage::

    python benchmarks/bench_training.py --quick            # a few minutes on 2 CPU cores
    python benchmarks/bench_training.py --json results.json --frameworks torch

From Python::

    from benchmarks.bench_training import run
    rows = run(quick=True)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from alexnet_lab.core import architecture, measure  # noqa: E402
from alexnet_lab.core.files import atomic_write_json  # noqa: E402

PRESETS = ("classic", "cifar10")
FRAMEWORKS = ("torch", "keras")
SETTINGS = {
    # batch size per preset, warm-up steps, timed steps
    True: dict(batch={"classic": 4, "cifar10": 16}, warmup=1, steps=3),
    False: dict(batch={"classic": 32, "cifar10": 128}, warmup=3, steps=10),
}
GPU_BATCH = {"classic": 128, "cifar10": 256}  # a GPU needs bigger batches to be busy


def _spec(preset: str, batch_size: int, warmup: int, steps: int, options: dict | None, **extra) -> dict:
    """The case for ``model_case`` of alexnet_lab.torch.benchmark / alexnet_lab.keras.benchmark: the float32
    baseline (``options`` None) or a candidate with ``options``, with this script's batch size and step counts."""
    return dict(preset=preset, quick=True, batch_size=batch_size, warmup=warmup, repetitions=steps,
                path="baseline" if options is None else "candidate", options=options or {}, **extra)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
def torch_variants(device) -> list[tuple[str, dict | None]]:
    """(name, candidate options or None for the float32 baseline) of each PyTorch variant on ``device``."""
    from alexnet_lab.torch import precision as torch_precision

    capability = torch_precision.cuda_capability(device)
    short = "fp16" if capability is not None and capability < (8, 0) else "bf16"
    return [("float32", None), (short, {"precision": short}), ("channels_last", {"channels_last": True}),
            (f"{short}+channels_last", {"precision": short, "channels_last": True})]


def _say(rows: list[dict]) -> None:
    """Print the rows just measured (to stderr, so a long run shows where it is)."""
    for r in rows:
        print(f"  {r['framework']} {r['preset']} {r['variant']} {r['mode']}: {r['images_per_s']:.2f} img/s "
              f"(load average {measure.load_average()})", file=sys.stderr, flush=True)


def _rows(framework: str, preset: str, variant: str, record: dict, progress: bool) -> list[dict]:
    """A model case's record as this script's rows: one per mode (train, inference)."""
    rows = [dict(framework=framework, preset=preset, variant=variant, mode=mode, batch_size=record["batch_size"],
                 images_per_s=record[f"{key}_images_per_s"], device=record["device"])
            for mode, key in (("train", "train"), ("inference", "infer"))]
    if progress:
        _say(rows)
    return rows


def bench_torch(preset: str, batch_size: int, warmup: int, steps: int, device=None, progress=False) -> list[dict]:
    """Every PyTorch variant of :func:`torch_variants`, measured in this process by ``torch_benchmark.model_case``."""
    from alexnet_lab.torch import benchmark as torch_benchmark
    from alexnet_lab.torch import precision as torch_precision

    device = torch_precision.torch_device(device, announce=False)
    rows = []
    for name, options in torch_variants(device):
        record = torch_benchmark.model_case(_spec(preset, batch_size, warmup, steps, options, device=str(device)))
        rows += _rows("torch", preset, name, record, progress)
    return rows


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------
def bench_keras(preset: str, batch_size: int, warmup: int, steps: int, progress=False) -> list[dict]:
    """The Keras ``float32`` and ``mixed_bfloat16`` policies, each with Keras' own ``jit_compile`` choice
    (``"auto"``), measured in this process by ``keras_benchmark.model_case``."""
    import keras

    from alexnet_lab.keras import benchmark as keras_benchmark

    rows = []
    for policy, options in (("float32", {"precision": False, "xla": "auto"}),
                            ("mixed_bfloat16", {"precision": "bf16", "xla": "auto"})):
        record = keras_benchmark.model_case(_spec(preset, batch_size, warmup, steps, options))
        keras.backend.clear_session()
        rows += _rows("keras", preset, policy, record, progress)
    return rows


# ---------------------------------------------------------------------------
# Both
# ---------------------------------------------------------------------------
def _add_speedups(rows: list[dict]) -> list[dict]:
    """Each row's speed relative to the float32 baseline of the same framework, preset and mode."""
    base = {(r["framework"], r["preset"], r["mode"]): r["images_per_s"] for r in rows
            if r["variant"] == "float32"}
    for r in rows:
        r["speedup"] = r["images_per_s"] / base[(r["framework"], r["preset"], r["mode"])]
    return rows


def _set_threads(framework: str, threads: int | None) -> None:
    """Limit the CPU threads of ``framework`` (None: leave its default, one per core)."""
    if threads is None:
        return
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already started: it keeps the threads it has
            print("warning: TensorFlow was already running; --threads does not apply to it", file=sys.stderr)


def run(*, frameworks=FRAMEWORKS, presets=PRESETS, quick: bool = False, batch_size: int | None = None,
        device: str | None = None, threads: int | None = None, progress: bool = True) -> list[dict]:
    """Measure every variant; returns one dict per (framework, preset, variant, mode) with images/s and speedup.

    Each row also records the CPU threads used and the machine's 1-minute load average when
    it was measured: on a shared machine, a load above the number of cores means other
    programs took part of the time, and the figures are noisy.
    """
    unknown = set(frameworks) - set(FRAMEWORKS) | set(presets) - set(PRESETS)
    if unknown:
        raise ValueError(f"Unknown framework(s) or preset(s): {sorted(unknown)}; choose from {FRAMEWORKS} and "
                         f"{PRESETS}.")
    settings = SETTINGS[quick]
    rows = []
    for framework in frameworks:
        _set_threads(framework, threads)
        for preset in presets:
            size = batch_size or settings["batch"][preset]
            if framework == "torch":
                import torch

                on_gpu = torch.cuda.is_available() and device in (None, "cuda")
                size = batch_size or (GPU_BATCH[preset] if on_gpu and not quick else size)
                new = bench_torch(preset, size, settings["warmup"], settings["steps"], device, progress)
                used = torch.get_num_threads()
            else:
                import tensorflow as tf

                new = bench_keras(preset, size, settings["warmup"], settings["steps"], progress)
                used = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
            for r in new:
                r.update(threads=used, load_average=measure.load_average())
            rows += new
    return _add_speedups(rows)


def format_table(rows: list[dict]) -> str:
    lines = [f"{'framework':<9} {'model':<15} {'variant':<20} {'batch':>5} {'train img/s':>12} {'x f32':>6} "
             f"{'infer img/s':>12} {'x f32':>6}"]
    seen = {}
    for r in rows:
        seen.setdefault((r["framework"], r["preset"], r["variant"]), {})[r["mode"]] = r
    for (framework, preset, variant), modes in seen.items():
        t, i = modes["train"], modes["inference"]
        size = architecture.get_preset(preset).image_size
        lines.append(f"{framework:<9} {f'{preset} {size}':<15} {variant:<20} {t['batch_size']:>5} "
                     f"{t['images_per_s']:>12.1f} {t['speedup']:>6.2f} {i['images_per_s']:>12.1f} {i['speedup']:>6.2f}")
    devices_seen = {f"{r['framework']}: {r['device']}": None for r in rows}
    threads = {f"{r['framework']} {r['threads']}": None for r in rows}
    loads = [r["load_average"] for r in rows if r["load_average"] is not None]
    return "\n".join(lines + [f"device, {d}" for d in devices_seen] + [f"CPU threads: {', '.join(threads)}"]
                     + [f"load average while measuring: {min(loads)} to {max(loads)} (on {os.cpu_count()} cores)"]
                     * bool(loads))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, few steps (a few minutes on a CPU)")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements to this JSON file")
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--batch-size", type=int, help="override the batch size of every case")
    parser.add_argument("--device", help="PyTorch device (cuda, mps, cpu); default: the best available")
    parser.add_argument("--threads", type=int, help="CPU threads per framework (default: one per core)")
    args = parser.parse_args(argv)
    rows = run(frameworks=args.frameworks, presets=args.presets, quick=args.quick, batch_size=args.batch_size,
               device=args.device, threads=args.threads)
    print(format_table(rows))
    if args.json:
        atomic_write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
