"""``alexnet-lab assignment release|grade``: the assignment tools on the command line.

``release`` writes the student versions of the solution notebooks
(:func:`alexnet_lab.grading.assignments.release`); ``grade`` runs submitted notebooks under the
instructor's conditions (the source's test, read-only and parameters cells, the grader's profile, a
guard against replaced checks) and scores their graded cells (:func:`alexnet_lab.grading.grader.grade`)::

    alexnet-lab assignment release [--source assignments/] [--out release/]
    alexnet-lab assignment grade SUBMISSIONS... [--source assignments/] [--out grades/] [--timeout 120]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet_lab.grading.assignments import release
from alexnet_lab.grading.grader import grade

__all__ = ["register_cli"]


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
    except (FileNotFoundError, ValueError) as e:  # no submissions or sources; an unknown profile
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
                   help="run profile the submissions are graded in, written into their parameters cell whatever they "
                        "set there (default: $ALEXNET_LAB_PROFILE, else laptop)")
    g.add_argument("--kernel", help="an installed Jupyter kernel to run submissions in (default: this Python)")
    g.set_defaults(func=_cli_grade)
