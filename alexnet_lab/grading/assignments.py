"""Assignments in nbgrader's format: read the markings, write the student versions.

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

This module reads and checks those markings (:func:`cell_role`, :func:`validate`) and writes
the student versions (:func:`student_version`, :func:`release`); :mod:`alexnet_lab.grading.grader`
runs and scores the submissions. Both are on the command line (``alexnet-lab assignment --help``,
:mod:`alexnet_lab.cli.assignment`)::

    alexnet-lab assignment release [--source assignments/] [--out release/]
    alexnet-lab assignment grade SUBMISSIONS... [--source assignments/] [--out grades/] [--timeout 120]
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from alexnet_lab.core.files import atomic_write_text

__all__ = [
    "AssignmentFormatError", "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "CODE_STUB", "TEXT_STUB",
    "nbgrader_metadata", "cell_role", "cell_points", "cell_source", "visible_source", "grade_ids", "validate",
    "student_version",
    "write_notebook", "load_sources", "release",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE: replace this line with your code (the comments above say what to write).\n"
             "raise NotImplementedError(\"your code goes here\")")
TEXT_STUB = "YOUR ANSWER HERE"


class AssignmentFormatError(ValueError):
    """An assignment notebook whose nbgrader markings are inconsistent."""


# ---------------------------------------------------------------------------------------------
# Reading nbgrader's cell metadata
# ---------------------------------------------------------------------------------------------
def nbgrader_metadata(cell) -> dict:
    """A cell's ``metadata.nbgrader`` (``{}`` for a cell nbgrader does not know)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def cell_role(cell) -> str | None:
    """What a cell is for nbgrader: ``"autograded"``, ``"manual"``, ``"task"``, ``"solution"``, ``"locked"`` or ``None``."""
    m = nbgrader_metadata(cell)
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


def cell_points(cell) -> float:
    """The points a graded cell carries (0 for any other cell)."""
    return float(nbgrader_metadata(cell).get("points", 0) or 0)


def cell_source(cell) -> str:
    """A cell's source as one string (nbformat allows a list of lines too)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def grade_ids(nb) -> dict[str, int]:
    """The index of every nbgrader cell of a notebook, by its ``grade_id``."""
    return {nbgrader_metadata(c)["grade_id"]: i for i, c in enumerate(nb.cells)
            if cell_role(c) and nbgrader_metadata(c).get("grade_id")}


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
        text = cell_source(cell)
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
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if not grade_id:
            raise AssignmentFormatError(f"{where}: nbgrader cell without a grade_id: give it a unique name.")
        if grade_id in seen:
            raise AssignmentFormatError(f"{name}: grade_id {grade_id!r} is used by cells {seen[grade_id]} and "
                                        f"{index}; grade_ids must be unique.")
        seen[grade_id] = index
        if role in ("autograded", "manual", "task") and cell_points(cell) <= 0:
            raise AssignmentFormatError(f"{where} ({grade_id}): a graded cell needs points > 0.")
        if role == "autograded" and cell.cell_type != "code":
            raise AssignmentFormatError(f"{where} ({grade_id}): an autograded test must be a code cell.")


# ---------------------------------------------------------------------------------------------
# Release: the student version
# ---------------------------------------------------------------------------------------------
def _clear_solution(cell, where: str) -> None:
    kept, found = _lines_between(cell_source(cell), BEGIN_SOLUTION, END_SOLUTION, where)
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


def visible_source(cell, where: str = "cell") -> str:
    """A cell's source as students see it: without the lines between the hidden-test markers."""
    kept, _ = _lines_between(cell_source(cell), BEGIN_HIDDEN, END_HIDDEN, where)
    return "\n".join(line for _, line in kept if line is not None)


def _remove_hidden(cell, where: str) -> None:
    cell.source = visible_source(cell, where)


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


def write_notebook(nb, path: str | os.PathLike) -> None:
    """Write a notebook atomically (a reader never sees half a file)."""
    import nbformat

    atomic_write_text(Path(path), nbformat.writes(nb) + "\n")


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
        write_notebook(student_version(nb, f"{name}.ipynb"), path)
        written.append(path)
    return written

