"""The grader's guard inside a submission's kernel: were the course's functions or the tests' names tampered with?

The grader (:mod:`alexnet_lab.grading.grader`) runs a submission one cell at a time. Between the
cells it calls this module in the same kernel, through silent executions that leave no trace in
the notebook (:class:`alexnet_lab.grading.enforcement.KernelGuard` sends them):

* :func:`seal`, before the first cell of the submission: a fingerprint of every function and
  class of the ``alexnet_lab`` modules loaded (the checks among them: the whole
  :mod:`alexnet_lab.grading.checks` package is imported for it) and of Python's builtins;
* :func:`checkpoint`, before and after every cell. After one of the assignment's cells (the
  parameters cell, read-only and test cells) it records the names that cell binds (``profile``,
  ``REFERENCE``, ``checks``, ``np``...) and fingerprints the course modules loaded since. After
  a cell of the student it notes what that cell did to them: a recorded name rebound, a
  function of a recorded module replaced (``np.allclose = ...``), a builtin shadowed, a function
  of the course replaced (``checks.assert_accuracy = lambda *a, **k: 1.0``). Before one of the
  assignment's cells it puts back what was changed, so that the cell runs as the instructor wrote it.

What counts, in the answers (JSON) it returns to the grader:

* once a function of the course (or a Python builtin) has been replaced, every test cell that runs
  afterwards gets a *verdict*, and the grader scores it 0 with that message: a test that calls a
  replaced check proves nothing;
* a test cell that uses a name the submission rebound or changed (a hidden test's ``profile``,
  ``np`` or ``len``) gets a verdict too, naming the name and the cell that changed it;
* anything else (``REQUIRED = 0`` in a cell of the student, when no test reads ``REQUIRED``) is a
  note for the report.

This is a tripwire, not a sandbox: code in the kernel can reach this module too. It catches
replaced functions and shadowed names; a student who studies this module and attacks it is not
stopped, and the notebook, kept in full with the report, shows how (assignments/README.md,
"What the grader guarantees").
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import json
import sys
import types

__all__ = ["seal", "checkpoint", "COURSE_PACKAGE"]

COURSE_PACKAGE = "alexnet_lab"
_MISSING = object()
# Builtins that IPython and ipykernel themselves set or swap while cells run.
_DYNAMIC_BUILTINS = frozenset({"input", "raw_input", "getpass", "exit", "quit", "get_ipython", "display", "help",
                               "open", "copyright", "credits", "license", "_", "__", "___"})


def _is_course(name: str) -> bool:
    return name == COURSE_PACKAGE or name.startswith(COURSE_PACKAGE + ".")


def _code_of(value):
    """What a function's behaviour hangs on besides its identity: code and defaults (None for other objects)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return tuple(_code_of(f) for f in (value.fget, value.fset, value.fdel))
    if isinstance(value, types.FunctionType):
        return value.__code__, value.__defaults__, value.__kwdefaults__
    return None


def _restore_code(value, code) -> None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property) and code is not None:
        for accessor, its_code in zip((value.fget, value.fset, value.fdel), code):
            _restore_code(accessor, its_code)
    elif isinstance(value, types.FunctionType) and code is not None:
        value.__code__, value.__defaults__, value.__kwdefaults__ = code


@dataclasses.dataclass
class _Recorded:
    """A name an assignment's cell bound: its value, and for modules and frozen records what to compare."""

    value: object
    label: str
    attrs: dict | None = None       # a module's callables, by attribute
    frozen: object | None = None    # a copy of a frozen dataclass (REFERENCE, profile)


class _State:
    def __init__(self):
        self.functions: dict[str, tuple] = {}   # "module.attr" -> (holder, attr, value, code)
        self.modules: set[str] = set()
        self.names: dict[str, _Recorded] = {}
        self.builtins: dict[str, object] = {}   # what the user namespace held for each builtin's name
        self.compromised: str | None = None
        self.changed: dict[str, str] = {}       # name -> where the submission changed it ("cell 9")


_state: _State | None = None


# ---------------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------------
def _fingerprint_module(state: _State, name: str, module) -> None:
    state.modules.add(name)
    for attr, value in list(vars(module).items()):
        if attr.startswith("__") or not (callable(value) or isinstance(value, types.ModuleType)):
            continue
        state.functions[f"{name}.{attr}"] = (module, attr, value, _code_of(value))
        if isinstance(value, type) and value.__module__ == name:  # the methods of the module's own classes
            for key, member in list(vars(value).items()):
                code = _code_of(member)
                if code is not None:
                    state.functions[f"{name}.{attr}.{key}"] = (value, key, member, code)


def _fingerprint_new_modules(state: _State) -> None:
    for name, module in list(sys.modules.items()):
        if _is_course(name) and name not in state.modules and isinstance(module, types.ModuleType):
            _fingerprint_module(state, name, module)


def _leaves(value) -> list:
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _same_code(a, b) -> bool:
    left, right = _leaves(a), _leaves(b)
    return len(left) == len(right) and all(x is y for x, y in zip(left, right))


def _replaced(state: _State, restore: bool) -> list[str]:
    """The course's functions (and builtins) that no longer are what they were; put back if ``restore``."""
    found = []
    for qualname, (holder, attr, value, code) in state.functions.items():
        if vars(holder).get(attr, _MISSING) is value and _same_code(_code_of(value), code):
            continue
        found.append(qualname)
        if restore:
            _restore_code(value, code)
            setattr(holder, attr, value)
    return found


def _module_attrs(module) -> dict:
    return {attr: value for attr, value in list(vars(module).items()) if callable(value)}


def _record(state: _State, ns: dict, names, label: str) -> None:
    for name in names:
        if name not in ns:
            continue
        value = ns[name]
        entry = _Recorded(value, label)
        if isinstance(value, types.ModuleType) and not _is_course(value.__name__):  # the course's: fingerprinted
            entry.attrs = _module_attrs(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type) \
                and value.__dataclass_params__.frozen:
            try:
                entry.frozen = copy.deepcopy(value)
            except Exception:  # noqa: BLE001 - a record that cannot be copied is compared by identity only
                entry.frozen = None
        state.names[name] = entry
        state.changed.pop(name, None)


def _name_problem(state: _State, ns: dict, name: str) -> str | None:
    """What the submission did to a recorded name, or None."""
    entry = state.names[name]
    current = ns.get(name, _MISSING)
    if current is _MISSING:
        return f"deletes `{name}`"
    if current is not entry.value:
        return f"rebinds `{name}`"
    if entry.attrs is not None:
        now = vars(current)
        changed = [attr for attr, value in entry.attrs.items() if now.get(attr, _MISSING) is not value]
        if changed:
            return "changes " + ", ".join(f"`{name}.{attr}`" for attr in changed[:3])
    if entry.frozen is not None:
        try:
            same = bool(current == entry.frozen)
        except Exception:  # noqa: BLE001 - fields that cannot be compared: identity is all we check
            same = True
        if not same:
            return f"changes the fields of `{name}`"
    return None


def _put_back(state: _State, ns: dict, name: str) -> None:
    entry = state.names[name]
    if entry.attrs is not None and ns.get(name) is entry.value:
        now = vars(entry.value)
        for attr, value in entry.attrs.items():
            if now.get(attr, _MISSING) is not value:
                setattr(entry.value, attr, value)
    elif entry.frozen is not None and ns.get(name) is entry.value:
        entry.value = copy.deepcopy(entry.frozen)
    ns[name] = entry.value


def _shadowed_builtin(state: _State, ns: dict, name: str) -> bool:
    return name in state.builtins and ns.get(name, _MISSING) is not state.builtins[name]


# ---------------------------------------------------------------------------------------------
# What the grader calls
# ---------------------------------------------------------------------------------------------
def seal(ns: dict) -> str:
    """Fingerprint the course's functions and the builtins, before any cell of the submission runs."""
    global _state
    import alexnet_lab.grading.checks  # noqa: F401 - every check is fingerprinted before a student's cell runs

    state = _State()
    _fingerprint_new_modules(state)
    state.modules.add("builtins")
    for name in dir(builtins):
        value = getattr(builtins, name)
        if name in _DYNAMIC_BUILTINS or (name.startswith("__") and name != "__import__") \
                or getattr(value, "__module__", None) != "builtins":  # IPython adds (and swaps) builtins of its own
            continue
        state.functions[f"builtins.{name}"] = (builtins, name, value, None)
        state.builtins[name] = ns.get(name, _MISSING)
    _state = state
    return json.dumps({"sealed": len(state.functions)})


def _compromise(state: _State, replaced: list[str], where: str) -> None:
    if state.compromised is None:
        names = ", ".join(replaced[:3]) + (f" and {len(replaced) - 3} more" if len(replaced) > 3 else "")
        state.compromised = (f"the submission replaced {names} ({where}): the checks cannot be trusted after that, "
                             "so every test that runs after it scores 0")


def _before(state: _State, ns: dict, role: str, index: int, label: str, uses) -> tuple[list[str], str | None]:
    notes, verdict = [], None
    replaced = _replaced(state, restore=True)
    if replaced:
        _compromise(state, replaced, f"before cell {index}")
    problems = []
    for name in uses:
        if name in state.names:
            problem = _name_problem(state, ns, name)
            if problem:
                where = state.changed.get(name, f"before cell {index}")
                problems.append(f"{problem} ({where})")
                _put_back(state, ns, name)
        elif _shadowed_builtin(state, ns, name):
            where = state.changed.get(name, f"before cell {index}")
            problems.append(f"defines its own `{name}`, hiding Python's builtin ({where})")
            if state.builtins[name] is _MISSING:
                ns.pop(name, None)
            else:
                ns[name] = state.builtins[name]
    if role == "autograded":
        if state.compromised:
            verdict = state.compromised
        elif problems:
            verdict = (f"the submission {'; '.join(problems)}, and this test uses it: the test cannot be trusted, "
                       "so it scores 0")
    elif problems:
        notes.append(f"the submission {'; '.join(problems)}; the assignment's cell {label!r} ran with the "
                     "assignment's value")
    return notes, verdict


def _after_student(state: _State, ns: dict, index: int) -> list[str]:
    notes = []
    replaced = _replaced(state, restore=False)
    if replaced and state.compromised is None:
        _compromise(state, replaced, f"in cell {index}")
        notes.append(f"cell {index} replaces {', '.join(replaced[:3])}: every test after it scores 0")
    for name in state.names:
        if name in state.changed:
            continue
        problem = _name_problem(state, ns, name)
        if problem:
            state.changed[name] = f"cell {index}"
            notes.append(f"cell {index} {problem}, which the assignment's cell {state.names[name].label!r} "
                         "defines: a test that uses it scores 0")
    for name in state.builtins:
        if name not in state.changed and _shadowed_builtin(state, ns, name):
            state.changed[name] = f"cell {index}"
            notes.append(f"cell {index} defines its own `{name}`, hiding Python's builtin: a test that uses it "
                         "scores 0")
    return notes


def checkpoint(ns: dict, phase: str, role: str, index: int, label: str, uses=(), binds=()) -> str:
    """Check the kernel before (``phase="before"``) or after (``"after"``) cell ``index``; answer in JSON.

    ``role``: ``"student"``, ``"parameters"``, ``"locked"`` or ``"autograded"``; ``label``: the
    cell's grade_id; ``uses`` and ``binds``: the names the cell reads and binds (the grader
    reads them from the cell's source). The answer: ``{"notes": [...], "verdict": str | None}``.
    """
    state = _state
    if state is None:
        return json.dumps({"notes": ["the grader's guard was not set up in this kernel"], "verdict": None})
    notes, verdict = [], None
    if phase == "before":
        if role != "student":
            notes, verdict = _before(state, ns, role, index, label, uses)
    elif role == "student":
        notes = _after_student(state, ns, index)
    else:
        if role == "autograded":
            replaced = _replaced(state, restore=True)
            if replaced:
                _compromise(state, replaced, f"while the test cell {label!r} ran, from the submission's code it "
                                             "calls")
                verdict = state.compromised
        _fingerprint_new_modules(state)
        _record(state, ns, binds, label)
    return json.dumps({"notes": notes, "verdict": verdict})
