"""``alexnet-lab bench``: how fast does AlexNet train and predict here, in Keras and in PyTorch?

One run measures, side by side, for the ``classic`` preset (227×227, 1000 classes) and the
``cifar10`` preset (32×32):

* **baseline**: the plain float32 code a tutorial would write (PyTorch: NCHW tensors, no
  autocast, no compilation; Keras: the ``float32`` policy, ``jit_compile=False``);
* **default**: what the course's ``fit`` functions do on this hardware, decided by
  :mod:`alexnet_lab.torch.precision` (mixed precision, channels-last, ``torch.compile``) and by
  :mod:`alexnet_lab.keras.precision` (the dtype policy, XLA);
* with ``--candidates``, every speed-up on its own (bfloat16, channels-last, ``torch.compile``,
  XLA, ...): the evidence behind the defaults' rules;
* the **input pipeline** (``torch_pipeline.make_batches`` / ``keras_pipeline.make_batches`` with the
  paper's augmentation) in images/s, next to the training speed it has to keep up with.

For each case it reports training and inference images/s, the achieved FLOP/s and the fraction
of the machine's peak that is, and the peak memory; how each figure is made is in
:mod:`alexnet_lab.core.benchmark`. This module runs the cases: each in its own Python process,
so that its memory peak is its own and no framework state (a global dtype policy, compiled
graphs, allocator caches) leaks into the next case. That process measures the case with
:func:`alexnet_lab.torch.benchmark.model_case` or :func:`alexnet_lab.keras.benchmark.model_case`
(and their ``pipeline_case``), importing only its own framework.

From Python::

    from alexnet_lab.cli import bench
    from alexnet_lab.core import benchmark
    records = bench.run(quick=True)
    print(benchmark.format_table(records))
    benchmark.write_json(records, "bench.json")
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from alexnet_lab.core import architecture, hardware, measure
from alexnet_lab.core.benchmark import (
    CANDIDATES,
    FRAMEWORKS,
    GPU_PRESETS,
    PIPELINE_SOURCES,
    PRESETS,
    add_derived,
    cases,
    format_table,
    progress_line,
    variant_name,
    write_json,
)

__all__ = ["run", "add_arguments", "register_cli", "main"]

RESULT_MARK = "ALEXNET-LAB-BENCH-RESULT "
DESCRIPTION = ("Training and inference images/s of AlexNet in Keras and PyTorch: the plain float32 baseline next "
               "to the course's default path, the input pipelines, peak memory and the fraction of peak FLOP/s.")


# ---------------------------------------------------------------------------
# One case, in its own process
# ---------------------------------------------------------------------------
def _measure(spec: dict) -> dict:
    """Run one case in this process: the record of one measurement."""
    kind, framework = spec.get("kind"), spec.get("framework")
    if kind not in ("model", "pipeline") or framework not in FRAMEWORKS:
        raise ValueError(f"Unknown case: kind {kind!r}, framework {framework!r}.")
    if framework == "torch":  # only this case's framework is imported
        from alexnet_lab.torch import benchmark as side
    else:
        from alexnet_lab.keras import benchmark as side
    measure_case = side.model_case if kind == "model" else side.pipeline_case
    load_start = measure.load_average()
    record = measure_case(spec)
    record.update(load_average_start=load_start, load_average_end=measure.load_average(),
                  peak_rss_mib=measure.peak_rss_mib())
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
    root = str(Path(__file__).resolve().parents[2])  # the clone, so that it runs without installing
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    code = "from alexnet_lab.cli.bench import _child_main; _child_main()"
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
        candidates: also measure speed-ups on their own: True for all of
            :data:`~alexnet_lab.core.benchmark.CANDIDATES`, or a list of their names (e.g.
            ``["compile", "xla"]``). bfloat16 is slow on CPUs without bfloat16 hardware, where it is emulated.
        pipeline: also measure the input pipeline of each framework and preset.
        device: PyTorch's device (``"cuda"``, ``"cpu"``, ...); None picks the best one. Keras uses
            the GPU whenever TensorFlow sees one.
        batch_size, warmup, repetitions: override the settings of :func:`~alexnet_lab.core.benchmark.settings_for`.
        threads: CPU threads per framework (default: the framework's own choice, one per core).
        timeout: seconds after which one case is abandoned (recorded with an ``error``).
        log: called with one line of text per finished case (default: print to stderr).

    Every record has ``framework``, ``preset``, ``path`` (``baseline``, ``default`` or ``candidate``),
    ``variant``, ``train_images_per_s`` and ``infer_images_per_s``; see :mod:`alexnet_lab.core.benchmark`
    for the rest.
    """
    _check_arguments(frameworks, presets, candidates, batch_size, warmup, repetitions, threads)
    if presets is None:
        presets = GPU_PRESETS if device is not None and str(device).startswith("cuda") else PRESETS
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    common = {"quick": quick, "device": device, "batch_size": batch_size, "warmup": warmup,
              "repetitions": repetitions, "threads": threads}
    run_info = {"run_started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick, "cpu": hardware.cpu_name(),
                "cpu_cores": hardware.cpu_cores(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
                "platform": platform.platform(), "run_load_average_start": measure.load_average()}
    records = []
    for framework in frameworks:
        for preset in presets:
            group = []
            for path, variant, options in cases(framework, candidates):
                spec = dict(common, kind="model", framework=framework, preset=preset, path=path, options=options)
                record = {"framework": framework, "preset": preset, "path": path, "variant": variant,
                          "image_size": architecture.get_preset(preset).image_size,
                          **_run_child(spec, timeout)}
                if path == "default":
                    record["variant"] = variant_name(record)
                group.append(record)
                log(progress_line(record))
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
    run_info["run_load_average_end"] = measure.load_average()
    for record in records:
        record.update(run_info)
    add_derived(records)
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
