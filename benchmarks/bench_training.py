"""Does mixed precision or channels-last memory make training faster here? Measured, not assumed.

For each framework and model this prints images/s of **training** steps (forward, backward,
SGD update) and of **inference** (forward only, dropout off), each next to a plain float32
baseline measured in the same run:

* PyTorch: float32 NCHW (baseline), bfloat16 autocast, channels-last, and both together;
  on a GPU without bfloat16 (compute capability < 8.0), float16 autocast with loss scaling
  stands in for bfloat16.
* Keras: the ``float32`` policy (baseline) and ``mixed_bfloat16`` (Keras models are
  channels-last already).

Models: the ``classic`` preset at 227×227 (1000 classes) and the ``cifar10`` preset at
32×32. The batches are random images of the right shape, already on the device: this measures
the model's arithmetic, not the input pipeline (see ``bench_pipelines.py`` for that). Every
figure is the median over timed steps, after warm-up steps that are not counted (they include
one-time costs: kernel selection, tracing, memory allocation).

``alexnet_lab.devices`` turns mixed precision and channels-last on by default only where
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
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from alexnet_lab import architecture  # noqa: E402
from alexnet_lab.benchmark import torch_steps  # noqa: E402
from alexnet_lab.files import atomic_write_json  # noqa: E402

PRESETS = ("classic", "cifar10")
FRAMEWORKS = ("torch", "keras")
SETTINGS = {
    # batch size per preset, warm-up steps, timed steps
    True: dict(batch={"classic": 4, "cifar10": 16}, warmup=1, steps=3),
    False: dict(batch={"classic": 32, "cifar10": 128}, warmup=3, steps=10),
}
GPU_BATCH = {"classic": 128, "cifar10": 256}  # a GPU needs bigger batches to be busy


def _median_rate(step, batch_size: int, warmup: int, steps: int, sync=lambda: None) -> float:
    """Median images/s of ``step()`` over ``steps`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
def torch_variants(device) -> list[tuple[str, str | None, bool]]:
    """(name, autocast dtype or None, channels_last) for each PyTorch variant on ``device``."""
    from alexnet_lab import devices

    capability = devices.cuda_capability(device)
    half = "float16" if capability is not None and capability < (8, 0) else "bfloat16"
    short = {"bfloat16": "bf16", "float16": "fp16"}[half]
    return [("float32", None, False), (short, half, False), ("channels_last", None, True),
            (f"{short}+channels_last", half, True)]


def _torch_case(preset: str, batch_size: int, warmup: int, steps: int, device, half: str | None,
                channels_last: bool) -> tuple[float, float]:
    """Training and inference images/s of one PyTorch variant."""
    import torch

    from alexnet_lab import torch_models

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = torch_models.alexnet(preset).to(device)
    c, h, w = model.input_shape
    x = torch.randn(batch_size, c, h, w, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = getattr(torch, half) if half else torch.float32
    train_step, inference_step = torch_steps(model, x, y, dtype=dtype, autocast=half is not None,
                                             grad_scaling=half == "float16")

    model.train()
    train = _median_rate(train_step, batch_size, warmup, steps, sync)
    model.eval()
    return train, _median_rate(inference_step, batch_size, warmup, steps, sync)


def _say(rows: list[dict]) -> None:
    """Print the rows just measured (to stderr, so a long run shows where it is)."""
    for r in rows:
        print(f"  {r['framework']} {r['preset']} {r['variant']} {r['mode']}: {r['images_per_s']:.2f} img/s "
              f"(load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def bench_torch(preset: str, batch_size: int, warmup: int, steps: int, device=None, progress=False) -> list[dict]:
    from alexnet_lab import devices

    device = devices.torch_device(device, announce=False)
    rows = []
    for name, half, channels_last in torch_variants(device):
        train, infer = _torch_case(preset, batch_size, warmup, steps, device, half, channels_last)
        if progress:
            _say([dict(framework="torch", preset=preset, variant=name, mode=m, images_per_s=r)
                  for m, r in (("train", train), ("inference", infer))])
        for mode, rate in (("train", train), ("inference", infer)):
            rows.append(dict(framework="torch", preset=preset, variant=name, mode=mode, batch_size=batch_size,
                             images_per_s=rate, device=devices.describe_device(device)))
    return rows


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------
def _keras_case(preset: str, batch_size: int, warmup: int, steps: int, policy: str) -> tuple[float, float]:
    """Training and inference images/s of the Keras model built under the dtype ``policy``."""
    import keras
    import numpy as np

    from alexnet_lab import keras_models, keras_training

    keras.mixed_precision.set_global_policy(policy)  # before building: the policy belongs to the model
    try:
        keras.utils.set_random_seed(0)
        model = keras_models.alexnet(preset)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    h, w, c = model.inputs[0].shape[1:]
    x = np.random.default_rng(0).normal(size=(batch_size, h, w, c)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, batch_size)
    model.compile(optimizer=keras_training.make_optimizer("sgd", lr=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = _median_rate(lambda: model.train_on_batch(x, y), batch_size, warmup, steps)
    infer = _median_rate(lambda: model.predict_on_batch(x), batch_size, warmup, steps)
    keras.backend.clear_session()
    return train, infer


def bench_keras(preset: str, batch_size: int, warmup: int, steps: int, progress=False) -> list[dict]:
    from alexnet_lab import keras_training

    rows = []
    for policy in ("float32", "mixed_bfloat16"):
        train, infer = _keras_case(preset, batch_size, warmup, steps, policy)
        if progress:
            _say([dict(framework="keras", preset=preset, variant=policy, mode=m, images_per_s=r)
                  for m, r in (("train", train), ("inference", infer))])
        for mode, rate in (("train", train), ("inference", infer)):
            rows.append(dict(framework="keras", preset=preset, variant=policy, mode=mode, batch_size=batch_size,
                             images_per_s=rate, device=keras_training.device_description()))
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
                r.update(threads=used, load_average=round(os.getloadavg()[0], 2))
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
    loads = [r["load_average"] for r in rows]
    return "\n".join(lines + [f"device, {d}" for d in devices_seen] + [f"CPU threads: {', '.join(threads)}"]
                     + [f"load average while measuring: {min(loads)} to {max(loads)} (on {os.cpu_count()} cores)"])


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
