"""Run the course's notebooks for the README's expected-results table, and write that table.

Each run executes one notebook from top to bottom in a fresh kernel (as "Restart kernel and run
all" does), in a given profile and with a given seed, and records its wall time, the hardware
and the accuracies it reached. The results are appended to ``docs/expected_results.json``; the
``table`` command turns them into the Markdown table between the markers in ``README.md``::

    .venv/bin/python scripts/expected_results.py run --profile laptop --seeds 0 1 2 --notebooks 05 06
    .venv/bin/python scripts/expected_results.py run --profile laptop --save-outputs   # seed 0, keeps outputs
    .venv/bin/python scripts/expected_results.py table          # rewrites the README's table

Two runs may share the machine (for example seeds 1 and 2 side by side, each pinned to one core with
``taskset``) when ``--shared-cores`` says so: their accuracies count, their wall times are left out of
the table, because they are not what a student with the machine to themselves would see::

    export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
    taskset -c 0 .venv/bin/python scripts/expected_results.py run --seeds 1 --shared-cores --notebooks 04 07 &
    taskset -c 1 .venv/bin/python scripts/expected_results.py run --seeds 2 --shared-cores --notebooks 04 07

``--save-outputs`` writes the executed notebook back over the original (seed 0 only), so that the
repository shows what each notebook produces in that profile; the cells it injects are removed
first, and the parameters cell is left as it was (the profile comes from ``ALEXNET_LAB_PROFILE``).

Run it on a quiet machine: the wall times are only meaningful when nothing else competes for the
cores. Set ``ALEXNET_LAB_DATA`` to where the data sets are (CI uses ``../shared/data``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "docs" / "expected_results.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- expected-results:begin -->", "<!-- expected-results:end -->"

# What each training notebook reached, as Python expressions evaluated in the notebook's kernel after
# its last cell: {label: expression}. Accuracies are fractions; the ReLU/tanh ratio is a plain number.
METRICS: dict[str, dict[str, str]] = {
    "01_lenet_to_alexnet": {
        "ReLU/tanh speed-up to 25 % training error": "result.ratio",
        "ReLU final training error": "result.histories['relu']['error'][-1]",
        "tanh final training error": "result.histories['tanh']['error'][-1]",
    },
    "03_normalization_lrn_batchnorm": {
        "PyTorch best test accuracy, BatchNorm": "max(h.best('val_accuracy') for h in torch_runs "
                                                 "if 'batch' in h.label.lower())",
        "PyTorch best test accuracy, no normalization": "max(h.best('val_accuracy') for h in torch_runs "
                                                        "if 'batch' not in h.label.lower())",
    },
    "04_random_data_smoke_test": {
        "random labels training accuracy": "t_random_train['accuracy']",
        "random labels, held-out accuracy (PyTorch)": "t_random_test['accuracy']",
        "random labels training accuracy (Keras)": "k_random_train['accuracy']",
        "random labels, held-out accuracy (Keras)": "k_random_test['accuracy']",
        "healthy run, test accuracy (PyTorch)": "healthy.last('val_accuracy')",
        "study-note network as written, test accuracy": "as_written_acc",
        "study-note network at 3 times Adam's default rate, test accuracy": "stuck_acc",
        "study-note network fixed, test accuracy": "fixed_acc",
    },
    "05_cifar10": {
        "CIFAR-10 test accuracy": "k_acc",
        "CIFAR-10 test accuracy, PyTorch with the Keras weights": "t_acc",
    },
    "06_fashion_mnist": {
        "AlexNet test accuracy": "t_acc",
        "LeNet-5 test accuracy": "lenet_acc",
        "AlexNet test accuracy, Keras with the PyTorch weights": "k_acc",
    },
    "07_training_recipe": {
        "full recipe test accuracy": "ablation.mean(recipe.FULL_RECIPE)",
        "without augmentation test accuracy": "ablation.mean('without augmentation')",
        "without dropout test accuracy": "ablation.mean('without dropout')",
        "without weight decay test accuracy": "ablation.mean('without weight decay')",
        "without schedule test accuracy": "ablation.mean('without schedule')",
        "full recipe training accuracy": "float(np.mean([r.train_accuracy for r in ablation.runs "
                                         "if r.label == recipe.FULL_RECIPE]))",
        "without augmentation training accuracy": "float(np.mean([r.train_accuracy for r in ablation.runs "
                                                  "if r.label == 'without augmentation']))",
        "centre crop test accuracy": "t_result.center_accuracy",
        "ten crops test accuracy": "t_result.ten_crop_accuracy",
    },
    "08_your_own_images": {
        "from scratch test accuracy": "scratch_acc",
        "fine-tuned test accuracy": "finetuned_acc",
        "last layer only test accuracy": "float(np.mean(results[SIZES[0], 'last layer only']))",
        "from scratch test accuracy, 100 per class": "float(np.mean(results[SIZES[-1], 'from scratch']))",
        "fine-tuned test accuracy, 100 per class": "float(np.mean(results[SIZES[-1], 'all layers']))",
        "teacher test accuracy (8 classes)": "teacher_acc",
        "teacher test accuracy, Keras with the PyTorch weights": "k_teacher_acc",
        "fine-tuned test accuracy, Keras (one run)": "k_acc",
    },
}
INJECTED = "injected-by-expected-results"
MARK = "EXPECTED-RESULTS-JSON:"


def notebook_path(name: str) -> Path:
    """``"05"`` or ``"05_cifar10"`` or a path: the notebook it names."""
    matches = sorted(NOTEBOOKS.glob(f"{Path(name).stem}*.ipynb"))
    if len(matches) != 1:
        known = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")))
        raise SystemExit(f"{name!r} names {len(matches)} notebooks; expected one of: {known}")
    return matches[0]


def hardware() -> str:
    """The CPU model, its vector units and core count (and the GPU, when PyTorch sees one), in words.

    The vector units matter as much as the model name: with AVX-512 BF16 the course computes in bfloat16
    by default, with AVX2 in float32 (``alexnet_lab.torch.precision``), and the accuracies and times differ.
    """
    from alexnet_lab.core import hardware

    units = hardware.cpu_vector_units()
    model = hardware.cpu_name() + (f" ({units})" if units else "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    words = f"{model}, {cores} core{'s' if cores != 1 else ''}"
    if hardware.mixed_precision_from_env() is False:
        words += f", float32 ({hardware.PRECISION_ENV_VAR}=off)"
    try:
        import torch

        if torch.cuda.is_available():
            words += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return words


def _code_cell(source: str):
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [INJECTED]
    return cell


def working_directory(path: Path, seed: int) -> Path:
    """Where the kernel runs: seed 0 beside the notebook, as a student's would; other seeds each in their own folder.

    Notebooks write their files under ``runs/`` relative to where they run (notebook 08 builds an image folder
    there), so two seeds run side by side would otherwise overwrite each other's files mid-run.
    """
    if seed == 0:
        return path.parent
    folder = path.parent / "runs" / "expected_results" / f"seed{seed}"  # runs/ is ignored by git
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def execute(path: Path, profile: str, seed: int, *, timeout_s: int) -> tuple[dict, object]:
    """Execute ``path`` in a fresh kernel; return its record and the executed notebook (injected cells removed)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    where = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    if where is None:
        raise SystemExit(f"{path.name}: no cell tagged 'parameters'; cannot set the seed")
    if seed != 0:
        nb.cells.insert(where + 1, _code_cell(f"SEED = {seed}  # injected by scripts/expected_results.py"))
    metrics = METRICS.get(path.stem, {})
    reader = ("import json as _json\n"
              "_values = {}\n"
              f"for _label, _expr in {metrics!r}.items():\n"
              "    _value = eval(_expr)\n"
              "    _values[_label] = None if _value is None else float(_value)\n"
              f"print({MARK!r} + _json.dumps(_values))\n")
    nb.cells.append(_code_cell(reader))

    os.environ["ALEXNET_LAB_PROFILE"] = profile  # the kernel inherits this process's environment
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(working_directory(path, seed))}})
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start

    values = {}
    for output in nb.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(MARK):
                values = json.loads(line[len(MARK):])
    nb.cells = [c for c in nb.cells if INJECTED not in c.metadata.get("tags", [])]
    record = {"notebook": path.stem, "profile": profile, "seed": seed, "wall_s": round(wall, 1),
              "metrics": values, "hardware": hardware(), "date": dt.date.today().isoformat(),
              "python": platform.python_version(), "versions": _versions()}
    return record, nb


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            found[dist.replace("-cpu", "")] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def load_results() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def save_results(records: list[dict]) -> None:
    """Write the results atomically: a failed write leaves the previous file as it was."""
    from alexnet_lab.core.files import atomic_write_json

    atomic_write_json(RESULTS, records)


@contextlib.contextmanager
def _results_lock():
    """Hold an exclusive lock on the results file's lock file while reading, changing and writing it."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def timed(record: dict) -> bool:
    """Whether a run's wall time stands for the hardware it names (it had the machine to itself)."""
    return record.get("timed", True)


def run(args: argparse.Namespace) -> int:
    import nbformat

    names = args.notebooks or sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb"))
    failed = 0
    for name in names:
        path = notebook_path(name)
        for seed in args.seeds:
            print(f"{path.stem}: profile {args.profile}, seed {seed} ...", flush=True)
            try:
                record, executed = execute(path, args.profile, seed, timeout_s=args.timeout)
            except Exception as error:  # a failing notebook is reported, and the others still run
                failed += 1
                print(f"  FAILED: {type(error).__name__}: {str(error)[-2000:]}", flush=True)
                continue
            if args.note:
                record["note"] = args.note
            print(f"  {record['wall_s']:.0f} s  {record['metrics']}", flush=True)
            if args.shared_cores:
                record["timed"] = False
            with _results_lock():  # two runs (e.g. two seeds side by side) may finish at the same moment
                records = [r for r in load_results()
                           if (r["notebook"], r["profile"], r["seed"]) != (path.stem, args.profile, seed)]
                save_results(records + [record])
            if args.save_outputs and seed == 0:
                from alexnet_lab.core.files import atomic_write_text

                text = nbformat.writes(executed)
                atomic_write_text(path, text if text.endswith("\n") else text + "\n")
                print(f"  outputs saved in {path.relative_to(ROOT)}", flush=True)
    return 1 if failed else 0


def _fmt(label: str, values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    as_percent = "ratio" not in label and "speed-up" not in label
    f = (lambda v: f"{100 * v:.1f} %") if as_percent else (lambda v: f"{v:.1f}×")
    if len(values) == 1:
        return f(values[0])
    error = statistics.stdev(values) / len(values) ** 0.5  # the standard error of the mean
    return f"{f(statistics.mean(values))} ± {f(error).rstrip(' %×')}{' pp' if as_percent else ''}"


def _cpu(hardware: str) -> str:
    """``"AMD EPYC (AVX2), 2 cores"`` -> ``"AMD EPYC (AVX2)"``: the processor without the core count."""
    return hardware.split(",")[0]


def table(records: list[dict]) -> str:
    """The Markdown table: one row per notebook, profile and metric, mean ± standard error over seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["notebook"], r["profile"]), []).append(r)
    order = {"smoke": 0, "laptop": 1, "full": 2}
    lines = ["| notebook | profile | result | mean ± standard error | seeds | wall time per run | hardware |",
             "|---|---|---|---|---|---|---|"]
    for (name, profile), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9))):
        runs.sort(key=lambda r: r["seed"])
        # Runs that shared the cores with another run (--shared-cores) count for the accuracies but
        # not for the time, nor for the hardware the time was measured on.
        clocked = [r for r in runs if timed(r)] or runs
        walls = [r["wall_s"] for r in clocked]
        low, high = f"{min(walls) / 60:.1f}", f"{max(walls) / 60:.1f}"
        wall = f"{low} min" if low == high else f"{low}–{high} min"
        if len(clocked) < len(runs):
            wall += f" (seed{'s' if len(clocked) > 1 else ''} {', '.join(str(r['seed']) for r in clocked)})"
        elif not any(timed(r) for r in runs):
            wall += " (runs shared the cores: slower than alone)"
        notes = sorted({r["note"] for r in clocked if r.get("note")})
        wall += "".join(f" ({n})" for n in notes)
        hw = "; ".join(sorted({r["hardware"] for r in clocked}))
        # Seeds run on another CPU than the timed ones (it changes the default precision): say which.
        timed_cpus = {_cpu(r["hardware"]) for r in clocked}
        elsewhere: dict[str, list[str]] = {}
        for r in runs:
            if _cpu(r["hardware"]) not in timed_cpus:
                elsewhere.setdefault(_cpu(r["hardware"]), []).append(str(r["seed"]))
        hw += "".join(f"; seed{'s' if len(s) > 1 else ''} {', '.join(s)} on {cpu}" for cpu, s in elsewhere.items())
        labels = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
        for i, label in enumerate(labels or ["(nothing is trained)"]):
            values = [r["metrics"].get(label) for r in runs]
            first = i == 0
            lines.append(f"| {name[:2] if first else ''} | {profile if first else ''} | {label} | "
                         f"{_fmt(label, values)} | {len(runs) if first else ''} | {wall if first else ''} | "
                         f"{hw if first else ''} |")
    return "\n".join(lines)


def write_table(args: argparse.Namespace) -> int:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers to put the table between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    from alexnet_lab.core.files import atomic_write_text

    atomic_write_text(README, f"{head}{BEGIN}\n{table(load_results())}\n{END}{tail}")
    print(table(load_results()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute notebooks and record their results")
    r.add_argument("--profile", default="laptop", choices=("smoke", "laptop", "full"))
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--notebooks", nargs="*", help="numbers or names, e.g. 05 06 (default: all)")
    r.add_argument("--timeout", type=int, default=3600, help="seconds any one cell may take")
    r.add_argument("--save-outputs", action="store_true", help="keep seed 0's outputs in the notebook")
    r.add_argument("--shared-cores", action="store_true",
                   help="these runs share the machine with other runs (e.g. seeds side by side, one core each): "
                        "their accuracies count in the table, their wall times do not")
    r.add_argument("--note", help="a remark kept with the runs and shown with their time, e.g. what else ran")
    sub.add_parser("table", help="rewrite the README's expected-results table from the recorded results")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else write_table(args)


if __name__ == "__main__":
    sys.exit(main())
