"""Grade submitted assignment notebooks: run each in a kernel of its own, score its graded cells.

Grading runs every submission in a kernel of its own (a separate process, in an empty temporary
folder, with a time limit for the whole notebook), so the grader never imports a student's code.
First the submission is made to run under the instructor's conditions (:func:`prepare_for_grading`):
its test cells (hidden tests included) and read-only cells are replaced by the source's, matched
by ``grade_id`` as nbgrader does, and its parameters cell by the source's, with the grader's
profile (:mod:`alexnet_lab.grading.enforcement`). While it runs, a guard in the kernel
(:mod:`alexnet_lab.grading.integrity`) watches between the cells for replaced check functions and
for changed names that the tests use. An autograded test cell scores its points when it runs
without an error and the guard has nothing against it (:func:`score`); :func:`grade` writes
``grades.csv``, one markdown report and one executed notebook per submission, and rewrites them
at the end, whatever a submission wrote into that folder. The notebook format itself (cell roles,
the student version) is :mod:`alexnet_lab.grading.assignments`; the command line is
``alexnet-lab assignment grade`` (:mod:`alexnet_lab.cli.assignment`).
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
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
    visible_source,
    write_notebook,
)
from alexnet_lab.grading.enforcement import GuardFindings, KernelGuard, enforce_parameters
from alexnet_lab.grading.reports import (
    CSV_COLUMNS,
    CellGrade,
    SubmissionGrade,
    output_listing,
    report_markdown,
    safe_stem,
    undo_writes,
    write_csv,
)

__all__ = [
    "CSV_COLUMNS", "CellGrade", "SubmissionGrade", "prepare_for_grading", "execute", "score", "grade_notebook", "grade",
    "write_csv", "report_markdown",
]


# ---------------------------------------------------------------------------------------------
# Running a submission
# ---------------------------------------------------------------------------------------------
def _one_line(text: str, limit: int = 600) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ANSI colours of tracebacks
    text = " / ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _same_text(a: str, b: str) -> bool:
    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    return norm(a) == norm(b)


def prepare_for_grading(submission, source, *, parameters: dict[str, object] | None = None) -> tuple[object, list[str]]:
    """The submission as it is run: the source's test, read-only and parameters cells put back.

    Autograded test cells (with their hidden tests) and read-only cells come from the source,
    matched by grade_id, whatever the student changed in them; their metadata (points) too. A
    test cell the student deleted is inserted again after the cell that precedes it in the
    source; nbgrader markings the source does not have (or a grade_id used twice) are removed.
    The parameters cell becomes the source's, with ``parameters`` (the grader's values, e.g.
    ``{"PROFILE": "laptop"}``) written in (:func:`alexnet_lab.grading.enforcement.enforce_parameters`).
    Returns the notebook to run and notes on what was restored or replaced.
    """
    nb = copy.deepcopy(submission)
    notes = []
    source_ids = grade_ids(source)
    seen = set()
    for cell in nb.cells:  # what the student has in graded cells does not count, only the source's version
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if cell_role(cell) is None:
            continue
        twice = bool(grade_id) and grade_id in seen
        if (cell_role(cell) in ("autograded", "locked") and grade_id not in source_ids) or twice:
            cell.metadata.pop("nbgrader", None)
            if twice:
                notes.append(f"a second cell claimed the grade_id {grade_id!r}; it was run as an ordinary cell.")
        seen.add(grade_id)
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
                theirs = cell_source(nb.cells[ids[grade_id]])
                if not (_same_text(theirs, cell_source(src_cell)) or _same_text(theirs, visible_source(src_cell))):
                    kind = "test cell" if role == "autograded" else "read-only cell"
                    notes.append(f"the {kind} {grade_id!r} had been edited; the assignment's version was run.")
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
    notes += enforce_parameters(nb, source, parameters)
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
            env: dict[str, str] | None = None, findings: GuardFindings | None = None) -> tuple[str, set[int], str]:
    """Run a notebook in place in a fresh kernel, at most ``timeout`` seconds for all its cells together.

    Errors in cells do not stop the run (as nbgrader does: each test cell scores on its own).
    With ``findings``, the guard of :mod:`alexnet_lab.grading.integrity` checks the kernel before
    the first cell and around every cell, and ``findings`` receives its notes and verdicts.
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
    guard = KernelGuard(client, findings) if findings is not None else None
    # The kernel's own error output (start-up notices, a crash's last words) goes to a file, not the terminal.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr, \
            client.setup_kernel(env=kernel_env, cwd=str(cwd) if cwd else None, stderr=stderr):
        deadline = time.monotonic() + timeout

        def time_left(where: int) -> None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError(f"time limit reached before cell {where}")
            client.timeout = max(1, int(remaining + 0.999))

        try:
            code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and cell_source(c).strip()]
            if guard is not None and code_cells:
                index = code_cells[0][0]
                time_left(index)
                guard.seal(code_cells[0][1])
            for index, cell in code_cells:
                time_left(index)
                if guard is not None:
                    guard.checkpoint("before", index, cell)
                client.execute_cell(cell, index)
                executed.add(index)
                if guard is not None:
                    time_left(index)
                    guard.checkpoint("after", index, cell)
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


def score(nb, executed: set[int], status_message: str = "",
          verdicts: dict[int, str] | None = None) -> tuple[list[CellGrade], list[str]]:
    """Points per graded cell of an executed notebook, and the errors of its other cells.

    An autograded test cell scores its points when it ran without an error and the guard gave no
    verdict against it (``verdicts``: cell index -> why the test cannot be trusted); one that did
    not run (time limit, dead kernel) scores 0. Manually graded cells score 0 until graded by hand.
    """
    grades, problems = [], []
    for index, cell in enumerate(nb.cells):
        role, meta = cell_role(cell), nbgrader_metadata(cell)
        error = _error_of(cell) if cell.cell_type == "code" else None
        if role == "autograded":
            if index not in executed:
                message = "not run: " + (status_message or "the notebook stopped before this cell.")
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, cell_points(cell), message))
            elif verdicts and index in verdicts:
                grades.append(CellGrade(meta["grade_id"], "auto", 0.0, cell_points(cell), verdicts[index]))
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


def _read(path: Path):
    """The notebook at ``path``, or the exception that reading it raised."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as e:  # noqa: BLE001 - anything unreadable is reported in the grades
        return e


def grade_notebook(path: str | os.PathLike, sources: dict, *, timeout: float = 120, kernel_name: str | None = None,
                   env: dict[str, str] | None = None, name: str | None = None,
                   parameters: dict[str, object] | None = None, notebook=None) -> SubmissionGrade:
    """Grade one submitted notebook against the matching source notebook (see :func:`grade`).

    ``notebook``: the submission already read (what :func:`grade` does before running any of
    them); ``parameters``: the grader's values for the parameters cell (``{"PROFILE": ...}``).
    The kernel runs in an empty temporary folder, removed afterwards.
    """
    path = Path(path)
    name = name or str(path)
    submission = _read(path) if notebook is None else notebook
    if isinstance(submission, Exception):
        return SubmissionGrade(name, None, "unreadable",
                               problems=[f"could not read the notebook: {_one_line(str(submission))}"])
    assignment = _match_source(submission, path, sources)
    if assignment is None:
        return SubmissionGrade(name, None, "unmatched", problems=[
            f"this notebook matches none of the assignments ({', '.join(sources)}): it carries none of their "
            "grade_ids. Was the wrong file submitted?"])
    source = sources[assignment]
    nb, notes = prepare_for_grading(submission, source, parameters=parameters)
    findings = GuardFindings()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="alexnet-lab-grading-", ignore_cleanup_errors=True) as work:
        status, executed, message = execute(nb, timeout=timeout, cwd=work, kernel_name=kernel_name, env=env,
                                            findings=findings)
    cells, problems = score(nb, executed, message, findings.verdicts)
    result = SubmissionGrade(name, assignment, status, cells, time.monotonic() - start,
                             notes + findings.notes + problems, nb)
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


def grade(submissions: Iterable[str | os.PathLike], *, source: str | os.PathLike = "assignments",
          out: str | os.PathLike = "grades", timeout: float = 120, kernel_name: str | None = None,
          profile: str | None = None, verbose: bool = True) -> list[SubmissionGrade]:
    """Grade submitted notebooks; write ``grades.csv``, one ``<name>.md`` report and ``<name>.graded.ipynb`` each.

    All submissions (and the sources) are read before the first one runs, so that none can
    change another. Whatever a submission writes into ``out`` while it runs is removed and named
    in its report, and the grader's files are written again at the end.

    Args:
        submissions: notebook files, or folders searched for ``*.ipynb``.
        source: the folder (or file) of solution notebooks; each submission is matched with
            one by the assignment name the release stamps in it, else by shared grade_ids.
        out: where the CSV, the reports and the executed notebooks go.
        timeout: seconds each notebook may run in all; then its kernel is stopped and the
            checks not reached score 0.
        kernel_name: an installed Jupyter kernel to use; default: this Python interpreter.
        profile: the run profile the submissions are graded in: written into their parameters cell
            (``PROFILE``) and set as ``ALEXNET_LAB_PROFILE``; default: ``$ALEXNET_LAB_PROFILE``, else laptop.
    """
    from alexnet_lab.core import profiles

    sources = load_sources(source)
    files = _submission_files(submissions)
    notebooks = {path: _read(path) for path in files}
    out = Path(out)
    chosen = profiles.get(profile or os.environ.get(profiles.ENV_VAR, "").strip() or profiles.DEFAULT).name
    env = {profiles.ENV_VAR: chosen, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    results, stems = [], []

    def write_outputs(g: SubmissionGrade, stem: str) -> None:
        atomic_write_text(out / f"{stem}.md", report_markdown(g, timeout))
        if g.executed is not None:
            write_notebook(g.executed, out / f"{stem}.graded.ipynb")

    for path in files:
        name = os.path.relpath(path) if not os.path.isabs(str(path)) else str(path)
        if verbose:
            print(f"grading {name} ...", flush=True)
        before = output_listing(out)
        g = grade_notebook(path, sources, timeout=timeout, kernel_name=kernel_name, env=env, name=name,
                           parameters={"PROFILE": chosen}, notebook=notebooks[path])
        written = undo_writes(out, before)
        if written:
            g.problems.append(f"the submission wrote into the grader's output folder ({', '.join(written[:5])}"
                              f"{' ...' if len(written) > 5 else ''}): removed, and the grader's own files "
                              "written again.")
        stem = safe_stem(name)
        while stem in stems:
            stem += "_"
        stems.append(stem)
        write_outputs(g, stem)
        results.append(g)
        if verbose:
            manual = f" (+{g.manual_max:g} by hand)" if g.manual_max else ""
            print(f"  {g.points:g} / {g.auto_max:g} points{manual}, {g.status}, {g.seconds:.0f} s "
                  f"-> {out / (stem + '.md')}", flush=True)
    for g, stem in zip(results, stems):  # again, after every kernel has stopped: nothing a submission wrote stays
        write_outputs(g, stem)
    write_csv(results, out / "grades.csv")
    return results
