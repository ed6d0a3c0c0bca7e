"""What the grader writes: the grades of one submission, ``grades.csv``, the markdown reports, the output folder.

:class:`CellGrade` and :class:`SubmissionGrade` hold what :mod:`alexnet_lab.grading.grader` finds;
:func:`write_csv` and :func:`report_markdown` turn them into the files an instructor reads.
:func:`output_listing` and :func:`undo_writes` keep the output folder the grader's own: what a
submission writes there while it runs is removed (and named in its report).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_lab.core.files import atomic_write_text

__all__ = ["CSV_COLUMNS", "CellGrade", "SubmissionGrade", "safe_stem", "write_csv", "report_markdown",
           "output_listing", "undo_writes"]

CSV_COLUMNS = ("submission", "grade_id", "points", "max_points", "message", "kind")


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


def safe_stem(name: str) -> str:
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


def output_listing(folder: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """The files under ``folder`` (path -> modification time and size) and its sub-folders."""
    files, folders = {}, set()
    if folder.is_dir():
        for p in folder.rglob("*"):
            rel, stat = str(p.relative_to(folder)), p.lstat()
            if p.is_dir() and not p.is_symlink():
                folders.add(rel)
            else:
                files[rel] = (stat.st_mtime_ns, stat.st_size)
    return files, folders


def undo_writes(out: Path, before: tuple[dict, set]) -> list[str]:
    """Remove what appeared or changed in ``out`` since ``before``; return those paths (and the removed ones)."""
    files, folders = output_listing(out)
    changed = sorted(p for p, stat in files.items() if before[0].get(p) != stat)
    for rel in changed:
        (out / rel).unlink(missing_ok=True)
    for rel in sorted(folders - before[1], key=len, reverse=True):
        try:
            (out / rel).rmdir()
        except OSError:
            pass
    return changed + sorted(p for p in before[0] if p not in files)
