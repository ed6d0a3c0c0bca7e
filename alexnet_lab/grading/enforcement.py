"""What the grader enforces besides the restored test cells: the instructor's parameters, and a guard in the kernel.

Two things, used by :mod:`alexnet_lab.grading.grader`:

* **The parameters cell** (the code cell tagged ``parameters``: ``PROFILE``, ``SEED``, ``FRAMEWORK``...)
  of a submission is replaced by the assignment's (:func:`enforce_parameters`), with the grader's
  profile written in as a literal. A parameter the assignment leaves to the student is listed in the
  source cell's metadata, with the values allowed (``{"alexnet_lab": {"student_choices":
  {"FRAMEWORK": ["torch", "keras"]}}}``); the student's value is kept when it is one of them. Every
  value the submission had changed is named in a note for the report. The submission's cell is only
  read (:func:`ast.literal_eval`), never run by the grader.
* **The guard** (:class:`KernelGuard`): between the cells of a submission the grader asks
  :mod:`alexnet_lab.grading.integrity`, inside the kernel, whether the course's functions were
  replaced or the names a cell relies on were changed, and collects its notes and verdicts
  (:class:`GuardFindings`). The names a cell binds and reads come from its source
  (:func:`cell_names`).
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field

from alexnet_lab.grading.assignments import cell_role, cell_source, grade_ids, nbgrader_metadata

__all__ = ["PARAMETERS_TAG", "CHOICES_KEY", "tags", "parameters_index", "literal_assignments", "render_parameters",
           "enforce_parameters", "cell_names", "guard_role", "GuardFindings", "KernelGuard"]

PARAMETERS_TAG = "parameters"
CHOICES_KEY = "student_choices"
_UNREADABLE = object()  # a parameter set by an expression the grader does not evaluate


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def parameters_index(nb) -> int | None:
    """The index of a notebook's first code cell tagged ``parameters`` (None if it has none)."""
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and PARAMETERS_TAG in tags(c)), None)


def _python(text: str) -> str:
    """A cell's source as plain Python (IPython's ``%magics`` and ``!commands`` turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(text)
    except Exception:  # noqa: BLE001 - without IPython, or for odd input, the text as it is
        return text


def literal_assignments(text: str) -> tuple[dict[str, object], list[int]]:
    """The ``NAME = value`` lines of a parameters cell, by name, and the line numbers of any other statement.

    A value that is not a literal (``PROFILE = os.environ[...]``) is recorded as unreadable;
    nothing is evaluated.
    """
    try:
        tree = ast.parse(_python(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}, [1]
    values, other = {}, []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                values[node.targets[0].id] = _UNREADABLE
        else:
            other.append(node.lineno)
    return values, other


def render_parameters(text: str, values: dict[str, object]) -> str:
    """The parameters cell ``text`` with the values of ``values`` written in (comments and layout kept)."""
    lines = text.split("\n")
    edits = []
    for node in ast.parse(text).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in values):
            value = node.value
            edits.append((value.lineno - 1, value.col_offset, value.end_lineno - 1, value.end_col_offset,
                          repr(values[node.targets[0].id])))
    for first, start, last, end, new in sorted(edits, reverse=True):  # offsets are in UTF-8 bytes
        head = lines[first].encode()[:start].decode()
        tail = lines[last].encode()[end:].decode()
        lines[first:last + 1] = [head + new + tail]
    return "\n".join(lines)


def enforce_parameters(nb, source, overrides: dict[str, object] | None = None) -> list[str]:
    """Replace ``nb``'s parameters cell (in place) by the source's, with ``overrides``; return notes for the report.

    ``overrides`` are the grader's own values (``{"PROFILE": "laptop"}``), used where the source's
    cell assigns that name. Parameters listed under ``metadata.alexnet_lab.student_choices`` keep
    the student's value when it is one of the values allowed. A note names every parameter the
    submission had changed, and other code in the submission's parameters cell (which is not run).
    """
    at = parameters_index(source)
    if at is None:
        return []
    src_cell = source.cells[at]
    text = cell_source(src_cell)
    defaults, _ = literal_assignments(text)
    choices = (src_cell.metadata.get("alexnet_lab", {}) or {}).get(CHOICES_KEY, {}) or {}
    mine = parameters_index(nb)
    theirs, other = literal_assignments(cell_source(nb.cells[mine])) if mine is not None else ({}, [])
    notes, values = [], {}
    for name, default in defaults.items():
        student = theirs.get(name, default)  # a parameter missing from the submission's cell counts as unchanged
        allowed = choices.get(name)
        readable = student is not _UNREADABLE
        if allowed is not None and readable and student in allowed:
            values[name] = student  # the student's choice
            continue
        value = (overrides or {}).get(name, default)
        if not readable or (student != default and student != value):
            shown = repr(student) if readable else "an expression"
            reason = f", which is not one of the choices ({', '.join(map(repr, allowed))})" if allowed else ""
            notes.append(f"the parameters cell: the submission set {name} = {shown}{reason}; graded with the "
                         f"assignment's {name} = {value!r}")
        values[name] = value
    if other:
        notes.append(f"the parameters cell: the submission's has other code (line {other[0]}), which was not run: "
                     "the assignment's parameters cell was used")
    fresh = copy.deepcopy(src_cell)
    fresh.source = render_parameters(text, {k: v for k, v in values.items()
                                            if v is not _UNREADABLE and repr(v) != repr(defaults[k])})
    fresh.outputs, fresh.execution_count = [], None
    for cell in nb.cells:  # only the enforced cell is the parameters cell
        if cell.cell_type == "code" and PARAMETERS_TAG in tags(cell):
            cell.metadata["tags"] = [t for t in tags(cell) if t != PARAMETERS_TAG]
    following = [nbgrader_metadata(c).get("grade_id") for c in source.cells[at + 1:] if cell_role(c)]
    ids = grade_ids(nb)
    target = next((ids[g] for g in following if g in ids), min(at, len(nb.cells)))
    if mine is not None and mine < target:
        nb.cells[mine] = fresh
    else:  # none, or below the cells that read it: the assignment's goes where the assignment has it
        nb.cells.insert(target, fresh)
        nb_next = following[0] if following else None
        notes.append("the parameters cell was missing from the submission" + (
            f" (or not before the cell {nb_next!r})" if nb_next else "") + "; the assignment's was put back")
    return notes


# ---------------------------------------------------------------------------------------------
# The names a cell binds and reads
# ---------------------------------------------------------------------------------------------
def _targets(node) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _targets(elt)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return []


def _top_level_binds(statements) -> list[str]:
    """Names bound at module level by these statements (inside if/for/while/with/try too, not in functions)."""
    names = []
    for node in statements:
        if isinstance(node, ast.Assign):
            names += [n for t in node.targets for n in _targets(t)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            names += _targets(node.target)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names += _targets(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            names += [n for item in node.items if item.optional_vars is not None for n in _targets(item.optional_vars)]
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names += _top_level_binds(getattr(node, block, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            names += ([handler.name] if handler.name else []) + _top_level_binds(handler.body)
    return names


def cell_names(text: str) -> tuple[list[str], list[str]]:
    """``(binds, uses)``: the names a cell binds at top level, and those it reads without binding them anywhere."""
    try:
        tree = ast.parse(_python(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], []
    stored = set()
    loaded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, ast.arg):
            stored.add(node.arg)
    binds = sorted(set(_top_level_binds(tree.body)))
    return binds, sorted(loaded - stored - set(binds))


# ---------------------------------------------------------------------------------------------
# The guard: calls into alexnet_lab.grading.integrity inside the kernel
# ---------------------------------------------------------------------------------------------
def guard_role(cell) -> str:
    """How the guard treats a cell: ``"parameters"``, ``"locked"``, ``"autograded"`` or ``"student"``."""
    if cell.cell_type == "code" and PARAMETERS_TAG in tags(cell):
        return "parameters"
    role = cell_role(cell)
    return role if role in ("locked", "autograded") else "student"


@dataclass
class GuardFindings:
    """What the guard found in one run: notes for the report, and verdicts that zero test cells (by index)."""

    notes: list[str] = field(default_factory=list)
    verdicts: dict[int, str] = field(default_factory=dict)
    available: bool = True


class KernelGuard:
    """Silent calls into :mod:`alexnet_lab.grading.integrity` in an nbclient kernel, between the cells."""

    MODULE = "alexnet_lab.grading.integrity"

    def __init__(self, client, findings: GuardFindings):
        self.client, self.findings = client, findings

    def _call(self, expression: str, cell) -> dict | None:
        if not self.findings.available:
            return None
        msg_id = self.client.kc.execute("", silent=True, store_history=False, allow_stdin=False,
                                        user_expressions={"answer": expression})
        reply = self.client.wait_for_reply(msg_id, cell)
        answer = ((reply or {}).get("content", {}).get("user_expressions") or {}).get("answer", {})
        if answer.get("status") != "ok":
            self.findings.available = False
            why = f"{answer.get('ename', 'no answer')}: {answer.get('evalue', '')}".strip(": ")
            self.findings.notes.append(f"the grader could not check this kernel for replaced functions ({why}); "
                                       "read this notebook's cells yourself")
            return None
        return json.loads(ast.literal_eval(answer["data"]["text/plain"]))

    def _take(self, answer: dict | None, index: int) -> None:
        if not answer:
            return
        for note in answer.get("notes", []):
            if note not in self.findings.notes:
                self.findings.notes.append(note)
        if answer.get("verdict"):
            self.findings.verdicts.setdefault(index, answer["verdict"])

    def seal(self, cell) -> None:
        self._call(f"__import__({self.MODULE!r}, fromlist=['seal']).seal(globals())", cell)

    def checkpoint(self, phase: str, index: int, cell) -> None:
        role = guard_role(cell)
        if phase == "before" and role == "student":
            return
        label = PARAMETERS_TAG if role == "parameters" else nbgrader_metadata(cell).get("grade_id", f"cell {index}")
        binds, uses = cell_names(cell_source(cell)) if role != "student" else ([], [])
        expression = (f"__import__({self.MODULE!r}, fromlist=['checkpoint']).checkpoint(globals(), {phase!r}, "
                      f"{role!r}, {index!r}, {label!r}, {uses!r}, {binds!r})")
        self._take(self._call(expression, cell), index)
