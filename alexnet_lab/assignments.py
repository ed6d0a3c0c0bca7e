"""Assignments in nbgrader's format: write the student versions, grade the submissions.

An assignment is one notebook in its *solution* form (``assignments/*.ipynb``). Its cells carry
nbgrader's metadata, so an instructor who uses nbgrader can take the notebook as it is:

* a **solution cell** (``"solution": true``) holds the answer, in full or between the lines
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``; the student version replaces it with a stub
  that raises ``NotImplementedError`` (code) or with ``YOUR ANSWER HERE`` (markdown);
* an **autograded test cell** (``"grade": true, "solution": false, "points": N``) scores its N
  points when it runs without an error; lines between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS`` are removed from the student version and put back for grading;
* a **manually graded answer** (``"grade": true, "solution": true``) or **task**
  (``"task": true``) carries points an instructor gives by hand;
* a **read-only cell** (``"locked": true``) is restored from the source before grading.

Two commands use this module (``alexnet-lab assignment --help``)::

    alexnet-lab assignment release [--source assignments/] [--out release/]
    alexnet-lab assignment grade SUBMISSIONS... [--source assignments/] [--out grades/] [--timeout 120]

Grading runs every submission in a kernel of its own (a separate process, with a time limit
for the whole notebook), so the grader never imports a student's code; the graded cells of
the submission are first replaced by the source's (hidden tests included), matched by
``grade_id``, as nbgrader does.
"""

from __future__ import annotations

import argparse
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

from .files import atomic_write_text

__all__ = [
    "AssignmentFormatError", "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "CODE_STUB", "TEXT_STUB",
    "cell_role", "validate", "student_version", "release", "load_sources",
    "CellGrade", "SubmissionGrade", "prepare_for_grading", "execute", "score", "grade_notebook", "grade",
    "write_csv", "report_markdown", "register_cli",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE: replace this line with your code (the comments above say what to write).\n"
             "raise NotImplementedError(\"your code goes here\")")
TEXT_STUB = "YOUR ANSWER HERE"
CSV_COLUMNS = ("submission", "grade_id", "points", "max_points", "message", "kind")


class AssignmentFormatError(ValueError):
    """An assignment notebook whose nbgrader markings are inconsistent."""


# ---------------------------------------------------------------------------------------------
# Reading nbgrader's cell metadata
# ---------------------------------------------------------------------------------------------
def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def cell_role(cell) -> str | None:
    """What a cell is for nbgrader: ``"autograded"``, ``"manual"``, ``"task"``, ``"solution"``, ``"locked"`` or ``None``."""
    m = _meta(cell)
    if m.get("task"):
        return "task"
    if m.get("grade") and m.get("solution"):
        return "manual"
    if m.get("grade"):
        return "autograded"
    if m.get("solution"):
        return "solution"
    if m.get("locked"):
        return "locked"
    return None


def _points(cell) -> float:
    return float(_meta(cell).get("points", 0) or 0)


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines_between(text: str, begin: str, end: str, where: str) -> tuple[list[str], bool]:
    """The lines of ``text`` outside ``begin``/``end`` regions, with a stub marker where a region was."""
    kept, inside, found = [], False, False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise AssignmentFormatError(f"{where}: '{begin}' inside another '{begin}' region; close the first "
                                            f"one with '{end}'.")
            inside, found = True, True
            kept.append((line[: line.index(begin)], None))  # remember the indentation of the region
        elif stripped == end:
            if not inside:
                raise AssignmentFormatError(f"{where}: '{end}' without a '{begin}' before it.")
            inside = False
        elif not inside:
            kept.append(("", line))
    if inside:
        raise AssignmentFormatError(f"{where}: '{begin}' is never closed: add a line '{end}'.")
    return kept, found


def validate(nb, name: str = "notebook") -> None:
    """Check an assignment notebook's markings; raise :class:`AssignmentFormatError` naming the cell.

    Every nbgrader cell needs a unique ``grade_id``; graded cells need points; solution regions
    may only be in solution cells and hidden tests only in autograded test cells (as nbgrader
    requires); every ``BEGIN`` needs its ``END``.
    """
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        role = cell_role(cell)
        text = _source(cell)
        _, has_solution = _lines_between(text, BEGIN_SOLUTION, END_SOLUTION, where)
        _, has_hidden = _lines_between(text, BEGIN_HIDDEN, END_HIDDEN, where)
        if has_solution and role not in ("solution", "manual"):
            raise AssignmentFormatError(f"{where}: a '{BEGIN_SOLUTION}' region in a cell that is not a solution "
                                        "cell: set metadata.nbgrader.solution to true.")
        if has_hidden and role != "autograded":
            raise AssignmentFormatError(f"{where}: hidden tests in a cell that is not an autograded test cell: "
                                        "set metadata.nbgrader.grade to true and give it points.")
        if role is None:
            continue
        grade_id = _meta(cell).get("grade_id")
        if not grade_id:
            raise AssignmentFormatError(f"{where}: nbgrader cell without a grade_id: give it a unique name.")
        if grade_id in seen:
            raise AssignmentFormatError(f"{name}: grade_id {grade_id!r} is used by cells {seen[grade_id]} and "
                                        f"{index}; grade_ids must be unique.")
        seen[grade_id] = index
        if role in ("autograded", "manual", "task") and _points(cell) <= 0:
            raise AssignmentFormatError(f"{where} ({grade_id}): a graded cell needs points > 0.")
        if role == "autograded" and cell.cell_type != "code":
            raise AssignmentFormatError(f"{where} ({grade_id}): an autograded test must be a code cell.")


# ---------------------------------------------------------------------------------------------
# Release: the student version
# ---------------------------------------------------------------------------------------------
def _clear_solution(cell, where: str) -> None:
    kept, found = _lines_between(_source(cell), BEGIN_SOLUTION, END_SOLUTION, where)
    stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    if not found:
        cell.source = stub
        return
    lines = []
    for indent, line in kept:
        if line is None:
            lines.extend(indent + s for s in stub.split("\n"))
        else:
            lines.append(line)
    cell.source = "\n".join(lines)


def _remove_hidden(cell, where: str) -> None:
    kept, _ = _lines_between(_source(cell), BEGIN_HIDDEN, END_HIDDEN, where)
    cell.source = "\n".join(line for _, line in kept if line is not None)


def student_version(nb, name: str = "notebook"):
    """A copy of a solution notebook as students get it: stubs for solutions, no hidden tests, no outputs."""
    validate(nb, name)
    out = copy.deepcopy(nb)
    for index, cell in enumerate(out.cells):
        where = f"{name}, cell {index}"
        role = cell_role(cell)
        if role in ("solution", "manual"):
            _clear_solution(cell, where)
        elif role == "autograded":
            _remove_hidden(cell, where)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    out.metadata.pop("celltoolbar", None)
    out.metadata.setdefault("alexnet_lab", {})["assignment"] = Path(name).stem
    return out




def _write_notebook(nb, path: Path) -> None:
    import nbformat

    atomic_write_text(path, nbformat.writes(nb) + "\n")


def _notebooks_in(source: str | os.PathLike) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"No assignment notebooks at {source}: pass --source with the folder of solution "
                                "notebooks (the repository's assignments/).")
    found = sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"{source} holds no .ipynb files: pass --source with the folder of solution notebooks.")
    return found


def load_sources(source: str | os.PathLike) -> dict[str, object]:
    """The solution notebooks of a folder (or one file), validated, by name (file name without .ipynb)."""
    import nbformat

    sources = {}
    for path in _notebooks_in(source):
        nb = nbformat.read(path, as_version=4)
        validate(nb, path.name)
        sources[path.stem] = nb
    return sources


def release(source: str | os.PathLike = "assignments", out: str | os.PathLike = "release") -> list[Path]:
    """Write the student version of every solution notebook in ``source`` to ``out``; return their paths."""
    written = []
    for name, nb in load_sources(source).items():
        path = Path(out) / f"{name}.ipynb"
        _write_notebook(student_version(nb, f"{name}.ipynb"), path)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# Grading
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


def _one_line(text: str, limit: int = 600) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ANSI colours of tracebacks
    text = " / ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ids(nb) -> dict[str, int]:
    return {_meta(c)["grade_id"]: i for i, c in enumerate(nb.cells) if cell_role(c) and _meta(c).get("grade_id")}


def prepare_for_grading(submission, source) -> tuple[object, list[str]]:
    """The submission with the source's test and read-only cells put back, matched by grade_id.

    Autograded test cells (with their hidden tests) and read-only cells come from the source,
    whatever the student changed in them; their metadata (points) too. A test cell the student
    deleted is inserted again after the cell that precedes it in the source. Returns the
    notebook to run and notes on what was restored.
    """
    nb = copy.deepcopy(submission)
    notes = []
    ids = _ids(nb)
    for cell in nb.cells:  # what the student has in graded cells does not count, only the source's version
        if cell_role(cell) in ("autograded", "locked") and _meta(cell).get("grade_id") not in _ids(source):
            cell.metadata.pop("nbgrader", None)
    previous_id = None
    for src_cell in source.cells:
        role = cell_role(src_cell)
        if role is None:
            continue
        grade_id = _meta(src_cell)["grade_id"]
        ids = _ids(nb)
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
            nb.cells[ids[grade_id]].metadata["nbgrader"] = copy.deepcopy(_meta(src_cell))
        elif role in ("manual", "task"):
            notes.append(f"the cell {grade_id!r} is missing from the submission.")
        previous_id = grade_id if grade_id in _ids(nb) else previous_id
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
                if cell.cell_type != "code" or not _source(cell).strip():
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


def _error_of(cell) -> str | None:
    """``"AssertionError: <first line of the message>"`` for a cell that raised, else None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", out.get("evalue", "")).splitlines() if line.strip()]
            more = " (more in the notebook)" if len(lines) > 1 else ""
            return _one_line(f"{out.get('ename', 'Error')}: {lines[0] if lines else ''}{more}")
    return None


def _answered(cell) -> bool:
    text = _source(cell)
    return bool(text.strip()) and TEXT_STUB not in text and "raise NotImplementedError" not in text


def score(nb, executed: set[int], status_message: str = "") -> tuple[list[CellGrade], list[str]]:
    """Points per graded cell of an executed notebook, and the errors of its other cells.

    An autograded test cell scores its points when it ran without an error; one that did not
    run (time limit, dead kernel) scores 0. Manually graded cells score 0 until graded by hand.
    """
    grades, problems = [], []
    for index, cell in enumerate(nb.cells):
        role, meta = cell_role(cell), _meta(cell)
        error = _error_of(cell) if cell.cell_type == "code" else None
        if role == "autograded":
            if index not in executed:
                message = "not run: " + (status_message or "the notebook stopped before this cell.")
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, _points(cell), message))
            elif error:
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, _points(cell), error))
            else:
                grades.append(CellGrade(meta["grade_id"], "auto", _points(cell), _points(cell), "passed"))
        elif role in ("manual", "task"):
            state = "answered" if _answered(cell) else "not answered (still the placeholder)"
            grades.append(CellGrade(meta["grade_id"], "manual", 0.0, _points(cell),
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
    ids = set(_ids(nb))
    overlap = {n: len(ids & set(_ids(s))) for n, s in sources.items()}
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
            _write_notebook(g.executed, out / f"{stem}.graded.ipynb")
        results.append(g)
        if verbose:
            manual = f" (+{g.manual_max:g} by hand)" if g.manual_max else ""
            print(f"  {g.points:g} / {g.auto_max:g} points{manual}, {g.status}, {g.seconds:.0f} s "
                  f"-> {out / (stem + '.md')}", flush=True)
    write_csv(results, out / "grades.csv")
    return results


# ---------------------------------------------------------------------------------------------
# Command line: alexnet-lab assignment release|grade
# ---------------------------------------------------------------------------------------------
def _cli_release(args: argparse.Namespace) -> int:
    try:
        written = release(args.source, args.out)
    except FileNotFoundError as e:
        print(f"alexnet-lab: error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def _cli_grade(args: argparse.Namespace) -> int:
    try:
        results = grade(args.submissions, source=args.source, out=args.out, timeout=args.timeout,
                        kernel_name=args.kernel, profile=args.profile)
    except FileNotFoundError as e:
        print(f"alexnet-lab: error: {e}", file=sys.stderr)
        return 2
    print(f"\n{len(results)} submission(s) graded: {Path(args.out) / 'grades.csv'}")
    width = max(len(g.submission) for g in results)
    for g in results:
        print(f"  {g.submission:<{width}}  {g.points:>5g} / {g.auto_max:<5g} {g.status}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``alexnet-lab assignment release|grade`` to the command line."""
    parser = subparsers.add_parser("assignment", help="release student versions of assignments, grade submissions")
    sub = parser.add_subparsers(dest="assignment_command", required=True)

    r = sub.add_parser("release", help="write the student versions (solutions and hidden tests removed)")
    r.add_argument("--source", default="assignments", help="folder of solution notebooks (default: assignments/)")
    r.add_argument("--out", default="release", help="folder for the student versions (default: release/)")
    r.set_defaults(func=_cli_release)

    g = sub.add_parser("grade", help="run submitted notebooks and score their graded cells")
    g.add_argument("submissions", nargs="+", help="submitted notebooks, or folders of them")
    g.add_argument("--source", default="assignments", help="folder of solution notebooks (default: assignments/)")
    g.add_argument("--out", default="grades", help="folder for grades.csv and the reports (default: grades/)")
    g.add_argument("--timeout", type=float, default=120,
                   help="seconds each notebook may run in all before it is stopped (default: 120)")
    g.add_argument("--profile", choices=["smoke", "laptop", "full"],
                   help="run profile for the submissions (default: $ALEXNET_LAB_PROFILE, else laptop)")
    g.add_argument("--kernel", help="an installed Jupyter kernel to run submissions in (default: this Python)")
    g.set_defaults(func=_cli_grade)
