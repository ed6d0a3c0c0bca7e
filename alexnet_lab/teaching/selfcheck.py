"""Self-checks: the student computes an answer, and the check says whether it is right, and if not, why.

A self-check checks the student, not the package. The notebook asks for a number the student works
out (an output size by the formula, a layer's parameters by hand), leaves ``None`` in its place, and
the next cell calls :func:`check` with the right value and the wrong answers that common mistakes
give, each with its explanation::

    conv3_params = None   # your answer: (k·k·C_in + 1)·C_out

    selfcheck.check(conv3_params, (3 * 3 * 256 + 1) * 384, what="conv3's parameters",
                    mistakes={3 * 3 * 256 * 384: "that is the weights alone: each filter has a bias too"})

An answer left as ``None`` is reported as not answered yet (not as an error), so a notebook runs
from top to bottom before the student has filled anything in.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["check"]


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return "×".join(_show(v) for v in value)
    return repr(value)


def check(answer, expected, *, what: str, mistakes: Mapping | None = None, hint: str = "") -> bool | None:
    """Print whether ``answer`` is ``expected``; return True (right), False (wrong) or None (not answered).

    Args:
        answer: what the student computed; ``None`` while the exercise is not done.
        expected: the right value (an int, a float, a tuple such as a shape).
        what: what is asked, in words ("conv3's output size").
        mistakes: wrong answers that a known mistake gives, each with its explanation (the "why").
        hint: what to look at again when the answer is wrong in some other way.

    Floats are compared with a relative tolerance of 1e-6; everything else exactly.
    """
    if answer is None:
        print(f"… {what}: not answered yet. Put your answer in the cell above, run it, then run this one.")
        return None
    if _equal(answer, expected):
        print(f"✓ {what}: {_show(answer)} is right.")
        return True
    for wrong, why in (mistakes or {}).items():
        if _equal(answer, wrong):
            print(f"✗ {what}: {_show(answer)} is not right: {why}")
            return False
    print(f"✗ {what}: {_show(answer)} is not right." + (f" {hint}" if hint else ""))
    return False


def _equal(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), abs(float(b)), 1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b
