"""Grade submitted assignment notebooks: run each in a kernel of its own, score its graded cells.

Grading runs every submission in a kernel of its own (a separate process, with a time limit
for the whole notebook), so the grader never imports a student's code; the graded cells of
the submission are first replaced by the source's (hidden tests included), matched by
``grade_id``, as nbgrader does (:func:`prepare_for_grading`). An autograded test cell scores its
points when it runs without an error (:func:`score`); :func:`grade` writes ``grades.csv``, one
markdown report and one executed notebook per submission. The notebook format itself (cell
roles, the student version) is :mod:`alexnet_lab.grading.assignments`; the command line is
``alexnet-lab assignment grade`` (:mod:`alexnet_lab.cli.assignment`).
"""

from __future__ import annotations

import copy
import csv
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_lab.core.files import atomic_write_text
from alexnet_lab.grading.assignments import (
    TEXT_STUB,
    cell_points,
    cell_role,
    cell_source,
    grade_ids,
    load_sources,
    nbgrader_metadata,
    write_notebook,
)

__all__ = [
    "CSV_COLUMNS", "CellGrade", "SubmissionGrade", "prepare_for_grading", "execute", "score", "grade_notebook", "grade",
    "write_csv", "report_markdown",
]

CSV_COLUMNS = ("submission", "grade_id", "points", "max_points", "message", "kind")


# ---------------------------------------------------------------------------------------------
# What the grader finds
# ---------------------------------------------------------------------------------------------
@dataclass
class CellGrade:
    """The score of one graded cell of one submission."""

    grade_id: str
    kind: str            # "auto" (test cell) or "manual" (answer or task graded by hand)
    points: float
    max_points: float
    message: str


@dataclass
class SubmissionGrade:
    """Everything the grader found about one submitted notebook."""

    submission: str
    assignment: str | None
    status: str                      # "completed", "timeout", "crashed", "unreadable", "unmatched"
    cells: list[CellGrade] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)   # errors outside graded cells, restored cells...
    executed: object | None = None                      # the executed notebook (nbformat), if any

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def auto_max(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "auto")

    @property
    def manual_max(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "manual")

    def by_id(self, grade_id: str) -> CellGrade:
        for c in self.cells:
            if c.grade_id == grade_id:
                return c
        raise KeyError(f"No graded cell {grade_id!r} in {self.submission}; there are: "
                       f"{', '.join(c.grade_id for c in self.cells)}.")


# ---------------------------------------------------------------------------------------------
# Running a submission
# ---------------------------------------------------------------------------------------------
def _one_line(text: str, limit: int = 600) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ANSI colours of tracebacks
    text = " / ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prepare_for_grading(submission, source) -> tuple[object, list[str]]:
    """The submission with the source's test and read-only cells put back, matched by grade_id.

    Autograded test cells (with their hidden tests) and read-only cells come from the source,
    whatever the student changed in them; their metadata (points) too. A test cell the student
    deleted is inserted again after the cell that precedes it in the source. Returns the
    notebook to run and notes on what was restored.
    """
    nb = copy.deepcopy(submission)
    notes = []
    ids = grade_ids(nb)
    for cell in nb.cells:  # what the student has in graded cells does not count, only the source's version
        if (cell_role(cell) in ("autograded", "locked")
                and nbgrader_metadata(cell).get("grade_id") not in grade_ids(source)):
            cell.metadata.pop("nbgrader", None)
    previous_id = None
    for src_cell in source.cells:
        role = cell_role(src_cell)
        if role is None:
            continue
        grade_id = nbgrader_metadata(src_cell)["grade_id"]
        ids = grade_ids(nb)
        if role in ("autograded", "locked"):
            fresh = copy.deepcopy(src_cell)
            if fresh.cell_type == "code":
                fresh.outputs, fresh.execution_count = [], None
            if grade_id in ids:
                nb.cells[ids[grade_id]] = fresh
            else:
                at = ids[previous_id] + 1 if previous_id in ids else 0
                nb.cells.insert(at, fresh)
                notes.append(f"the cell {grade_id!r} was missing and has been put back from the assignment.")
        elif grade_id in ids:  # a solution or manually graded cell: the student's content, the source's metadata
            nb.cells[ids[grade_id]].metadata["nbgrader"] = copy.deepcopy(nbgrader_metadata(src_cell))
        elif role in ("manual", "task"):
            notes.append(f"the cell {grade_id!r} is missing from the submission.")
        previous_id = grade_id if grade_id in grade_ids(nb) else previous_id
    return nb, notes


def _grader_kernel_manager_class():
    """A kernel manager class whose kernel is ipykernel on this very Python (the one alexnet_lab is installed in).

    The kernel spec that ``jupyter`` installs says ``python``, which is whatever comes first on
    the PATH; grading must run in the environment that holds alexnet_lab and the frameworks.
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class CurrentPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (alexnet-lab grader)", language="python", resource_dir="")

    class GraderKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _default_kernel_spec_manager(self):
            return CurrentPython(parent=self)

    return GraderKernelManager


def execute(nb, *, timeout: float = 120, cwd: str | os.PathLike | None = None, kernel_name: str | None = None,
            env: dict[str, str] | None = None) -> tuple[str, set[int], str]:
    """Run a notebook in place in a fresh kernel, at most ``timeout`` seconds for all its cells together.

    Errors in cells do not stop the run (as nbgrader does: each test cell scores on its own).
    Returns ``(status, executed_cell_indices, message)``, status ``"completed"``, ``"timeout"``
    (the kernel was killed) or ``"crashed"`` (the kernel died).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    options = {"kernel_name": kernel_name} if kernel_name else {
        "kernel_name": "alexnet-lab-grader", "kernel_manager_class": _grader_kernel_manager_class()}
    client = NotebookClient(nb, **options, timeout=max(1, int(timeout)),
                            allow_errors=True, shutdown_kernel="immediate", record_timing=False,
                            startup_timeout=120)
    kernel_env = {**os.environ, **(env or {})}
    executed: set[int] = set()
    index = None
    # The kernel's own error output (start-up notices, a crash's last words) goes to a file, not the terminal.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr, \
            client.setup_kernel(env=kernel_env, cwd=str(cwd) if cwd else None, stderr=stderr):
        deadline = time.monotonic() + timeout
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell_source(cell).strip():
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CellTimeoutError(f"time limit reached before cell {index}")
                client.timeout = max(1, int(remaining + 0.999))
                client.execute_cell(cell, index)
                executed.add(index)
        except CellTimeoutError:
            return "timeout", executed, (f"the notebook ran out of time: it is allowed {timeout:g} s in all and "
                                         f"cell {index} was still running; the kernel was stopped.")
        except DeadKernelError:
            stderr.seek(0)
            last = [line for line in stderr.read().splitlines() if line.strip() and "WARNING" not in line][-3:]
            said = f" Its last output: {_one_line(chr(10).join(last), 300)}" if last else ""
            return "crashed", executed, f"the kernel died in cell {index} (the process ended).{said}"
    return "completed", executed, ""


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
def _error_of(cell) -> str | None:
    """``"AssertionError: <first line of the message>"`` for a cell that raised, else None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", out.get("evalue", "")).splitlines() if line.strip()]
            more = " (more in the notebook)" if len(lines) > 1 else ""
            return _one_line(f"{out.get('ename', 'Error')}: {lines[0] if lines else ''}{more}")
    return None


def _answered(cell) -> bool:
    text = cell_source(cell)
    return bool(text.strip()) and TEXT_STUB not in text and "raise NotImplementedError" not in text


def score(nb, executed: set[int], status_message: str = "") -> tuple[list[CellGrade], list[str]]:
    """Points per graded cell of an executed notebook, and the errors of its other cells.

    An autograded test cell scores its points when it ran without an error; one that did not
    run (time limit, dead kernel) scores 0. Manually graded cells score 0 until graded by hand.
    """
    grades, problems = [], []
    for index, cell in enumerate(nb.cells):
        role, meta = cell_role(cell), nbgrader_metadata(cell)
        error = _error_of(cell) if cell.cell_type == "code" else None
        if role == "autograded":
            if index not in executed:
                message = "not run: " + (status_message or "the notebook stopped before this cell.")
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, cell_points(cell), message))
            elif error:
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, cell_points(cell), error))
            else:
                grades.append(CellGrade(meta["grade_id"], "auto", cell_points(cell), cell_points(cell), "passed"))
        elif role in ("manual", "task"):
            state = "answered" if _answered(cell) else "not answered (still the placeholder)"
            grades.append(CellGrade(meta["grade_id"], "manual", 0.0, cell_points(cell),
                                    f"to grade by hand: {state}"))
            if error:
                problems.append(f"cell {index} ({meta['grade_id']}): {error}")
        elif error:
            label = f" ({meta['grade_id']})" if meta.get("grade_id") else ""
            problems.append(f"cell {index}{label}: {error}")
    return grades, problems


def _match_source(nb, path: Path, sources: dict) -> str | None:
    name = nb.metadata.get("alexnet_lab", {}).get("assignment")
    if name in sources:
        return name
    ids = set(grade_ids(nb))
    overlap = {n: len(ids & set(grade_ids(s))) for n, s in sources.items()}
    best = max(overlap, key=overlap.get, default=None)
    if best is not None and overlap[best] > 0:
        return best
    return path.stem if path.stem in sources else None


def grade_notebook(path: str | os.PathLike, sources: dict, *, timeout: float = 120, kernel_name: str | None = None,
                   env: dict[str, str] | None = None, name: str | None = None) -> SubmissionGrade:
    """Grade one submitted notebook against the matching source notebook (see :func:`grade`)."""
    import nbformat

    path = Path(path)
    name = name or str(path)
    try:
        submission = nbformat.read(path, as_version=4)
    except Exception as e:  # noqa: BLE001 - anything unreadable is reported in the grades
        return SubmissionGrade(name, None, "unreadable", problems=[f"could not read the notebook: {_one_line(str(e))}"])
    assignment = _match_source(submission, path, sources)
    if assignment is None:
        return SubmissionGrade(name, None, "unmatched", problems=[
            f"this notebook matches none of the assignments ({', '.join(sources)}): it carries none of their "
            "grade_ids. Was the wrong file submitted?"])
    source = sources[assignment]
    nb, notes = prepare_for_grading(submission, source)
    start = time.monotonic()
    status, executed, message = execute(nb, timeout=timeout, cwd=path.parent.resolve(), kernel_name=kernel_name, env=env)
    cells, problems = score(nb, executed, message)
    result = SubmissionGrade(name, assignment, status, cells, time.monotonic() - start, notes + problems, nb)
    if message:
        result.problems.insert(0, message)
    return result


# ---------------------------------------------------------------------------------------------
# Grading many submissions: the CSV and the reports
# ---------------------------------------------------------------------------------------------
def _submission_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"No submission at {p}: pass notebook files or folders that contain them.")
    if not files:
        raise FileNotFoundError("No .ipynb files among the submissions given.")
    return files


def _safe_stem(name: str) -> str:
    stem = name[:-6] if name.endswith(".ipynb") else name
    stem = stem.replace(os.sep, "__").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "submission"


def write_csv(grades: list[SubmissionGrade], path: str | os.PathLike) -> None:
    """One row per graded cell of every submission (columns: :data:`CSV_COLUMNS`), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for g in grades:
        if not g.cells:
            writer.writerow([g.submission, "", 0, 0, "; ".join(g.problems) or g.status, g.status])
        for c in g.cells:
            writer.writerow([g.submission, c.grade_id, f"{c.points:g}", f"{c.max_points:g}", c.message, c.kind])
    atomic_write_text(Path(path), buffer.getvalue())


def report_markdown(g: SubmissionGrade, timeout: float | None = None) -> str:
    """A readable report of one submission: total, one row per check with its feedback, other errors."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# Grade report: {g.submission}", ""]
    if g.assignment is None:
        lines += [f"Not graded ({g.status}).", ""] + [f"- {p}" for p in g.problems]
        return "\n".join(lines) + "\n"
    status = {"completed": "ran to the end", "timeout": "stopped at the time limit",
              "crashed": "the kernel crashed"}.get(g.status, g.status)
    limit = f" (limit {timeout:g} s)" if timeout else ""
    lines += [f"Assignment **{g.assignment}** · {status} in {g.seconds:.0f} s{limit}", "",
              f"**Autograded: {g.points:g} / {g.auto_max:g} points**"
              + (f" · {g.manual_max:g} more points are graded by hand" if g.manual_max else ""), "",
              "| check | points | feedback |", "| --- | --- | --- |"]
    for c in g.cells:
        pts = f"– / {c.max_points:g}" if c.kind == "manual" else f"{c.points:g} / {c.max_points:g}"
        lines.append(f"| {cell(c.grade_id)} | {pts} | {cell(c.message)} |")
    if g.problems:
        lines += ["", "## Other messages", ""] + [f"- {cell(p)}" for p in g.problems]
    return "\n".join(lines) + "\n"


def grade(submissions: Iterable[str | os.PathLike], *, source: str | os.PathLike = "assignments",
          out: str | os.PathLike = "grades", timeout: float = 120, kernel_name: str | None = None,
          profile: str | None = None, verbose: bool = True) -> list[SubmissionGrade]:
    """Grade submitted notebooks; write ``grades.csv``, one ``<name>.md`` report and ``<name>.graded.ipynb`` each.

    Args:
        submissions: notebook files, or folders searched for ``*.ipynb``.
        source: the folder (or file) of solution notebooks; each submission is matched with
            one by the assignment name the release stamps in it, else by shared grade_ids.
        out: where the CSV, the reports and the executed notebooks go.
        timeout: seconds each notebook may run in all; then its kernel is stopped and the
            checks not reached score 0.
        kernel_name: an installed Jupyter kernel to use; default: this Python interpreter.
        profile: the run profile (``ALEXNET_LAB_PROFILE``) for the kernels; default: inherited.
    """
    sources = load_sources(source)
    files = _submission_files(submissions)
    out = Path(out)
    env = {"ALEXNET_LAB_PROFILE": profile} if profile else {}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    results, used = [], set()
    for path in files:
        name = os.path.relpath(path) if not os.path.isabs(str(path)) else str(path)
        if verbose:
            print(f"grading {name} ...", flush=True)
        g = grade_notebook(path, sources, timeout=timeout, kernel_name=kernel_name, env=env, name=name)
        stem = _safe_stem(name)
        while stem in used:
            stem += "_"
        used.add(stem)
        atomic_write_text(out / f"{stem}.md", report_markdown(g, timeout))
        if g.executed is not None:
            write_notebook(g.executed, out / f"{stem}.graded.ipynb")
        results.append(g)
        if verbose:
            manual = f" (+{g.manual_max:g} by hand)" if g.manual_max else ""
            print(f"  {g.points:g} / {g.auto_max:g} points{manual}, {g.status}, {g.seconds:.0f} s "
                  f"-> {out / (stem + '.md')}", flush=True)
    write_csv(results, out / "grades.csv")
    return results
