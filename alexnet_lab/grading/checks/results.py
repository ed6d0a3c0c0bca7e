"""What a check returns: :class:`Finding`, :class:`Findings` and :class:`CheckReport`.

Every check returns findings rather than raising, so that a notebook can print them;
:func:`fail_with` turns them into the ``AssertionError`` of the ``assert_*`` functions (for
graded cells). The small helpers at the end write shapes the way every message does and copy
tensors of either framework to NumPy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Finding", "Findings", "CheckReport", "as_findings", "fail_with", "format_shape", "to_numpy"]


@dataclass(frozen=True)
class Finding:
    """One result of a check.

    ``layer`` is the reference's name for the layer ("conv1", "fc8"), or "input", "model",
    "loss", "evaluation", "training". ``aspect`` says what was compared ("shape", "params",
    "activation", "structure", ...). ``severity`` is ``"ok"``, ``"note"`` (worth knowing, not
    wrong) or ``"error"``.
    """

    layer: str
    aspect: str
    severity: str
    message: str

    @property
    def ok(self) -> bool:
        return self.severity != "error"

    def __str__(self) -> str:
        mark = {"ok": "✓", "note": "·", "error": "✗"}[self.severity]
        return f"{mark} {self.message}"


def as_findings(check):
    """Decorator: a check's list of findings becomes a :class:`Findings`, which prints readably."""
    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        return Findings(check(*args, **kwargs))
    return wrapper


class Findings(list):
    """A list of :class:`Finding` that prints one line per finding (✓ ok, · note, ✗ error)."""

    @property
    def passed(self) -> bool:
        return all(f.ok for f in self)

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


@dataclass
class CheckReport:
    """What :func:`check_model` found: one line per reference layer, and the findings.

    ``passed`` is true when no finding is an error; ``first_failure`` is the error that comes
    first in the network (later differences often follow from it).
    """

    title: str
    framework: str
    findings: list[Finding] = field(default_factory=list)
    table: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def first_failure(self) -> Finding | None:
        errors = self.errors
        return errors[0] if errors else None

    def summary(self) -> str:
        """One paragraph: all good, or the first difference and how many more there are."""
        if self.passed:
            return f"{self.title}: everything matches."
        first, more = self.errors[0], len(self.errors) - 1
        extra = f" ({more} more difference{'s' if more != 1 else ''} below.)" if more else ""
        return f"{self.title}: {first.message}{extra}"

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.table:
            widths = [max(len(row[i]) for row in self.table) for i in range(len(self.table[0]))]
            for row in self.table:
                lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if any(row[0] == "↓" for row in self.table):
                lines.append("↓: differs only because an earlier layer does (fix that one first)")
        problems = [f for f in self.findings if f.severity != "ok"]
        if problems:
            lines.append("")
            lines.extend(str(f) for f in problems)
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the full report for a bare `report`
        printer.text(str(self))


def fail_with(report_or_findings, title: str) -> None:
    """Raise an AssertionError whose first line is the first error (what a grader shows).

    For the ``assert_*`` functions: a :class:`CheckReport` raises its whole text, a list of
    findings raises ``"<title>: <first error>"`` followed by the other errors.
    """
    if isinstance(report_or_findings, CheckReport):
        if not report_or_findings.passed:
            raise AssertionError(str(report_or_findings))
        return
    errors = [f for f in report_or_findings if f.severity == "error"]
    if errors:
        raise AssertionError("\n".join([f"{title}: {errors[0].message}"] + [str(f) for f in errors[1:]]))


# ---------------------------------------------------------------------------------------------
# Small helpers the messages share
# ---------------------------------------------------------------------------------------------
def format_shape(shape) -> str:
    """``(55, 55, 96)`` as ``"55×55×96"``, the way the messages write shapes; ``"?"`` for an unknown one."""
    return "×".join(str(d) for d in shape) if shape is not None else "?"


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy array, a TensorFlow/Keras tensor or a PyTorch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)

