"""Is a student's model function their own code, or the course's builders in disguise?

Assignment A asks for AlexNet written layer by layer. The course's package builds it already
(``alexnet_lab.torch.models.alexnet``, ``alexnet_lab.keras.models.build``, the records of
:mod:`alexnet_lab.core.architecture` such as the assignment's ``REFERENCE``), and a model built
that way would pass every architecture check. :func:`assert_own_code` makes sure the function
under test uses none of that, in two ways:

* **what the function refers to**, read from its bytecode: the global names it loads (and, through
  them, the notebook's own helper functions it calls), its default values and closure, the
  modules it imports and the strings it holds. ``REFERENCE.filters``, ``architecture.layer_table``
  or ``from alexnet_lab.torch import models`` are found without running anything;
* **what it calls**: the function runs once under :func:`sys.setprofile`, and every call into the
  course's model code (``alexnet_lab/torch``, ``alexnet_lab/keras``, ``alexnet_lab/core/architecture``,
  ``alexnet_lab/frameworks.py``) is recorded, however the function got hold of it.

The course's checks (:mod:`alexnet_lab.grading.checks`), its profiles and its data are not model
code: a function may use them.
"""

from __future__ import annotations

import dis
import os
import sys
import types

__all__ = ["MODEL_CODE", "course_code_in", "assert_own_code"]

MODEL_CODE = ("alexnet_lab.torch", "alexnet_lab.keras", "alexnet_lab.core.architecture", "alexnet_lab.frameworks")
_MISSING = object()


def _is_model_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in MODEL_CODE)


def _origin(value) -> str | None:
    """``"module.qualname"`` when ``value`` is (or comes from) the course's model code, else None."""
    if isinstance(value, types.ModuleType):
        return value.__name__ if _is_model_module(value.__name__) else None
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        module = getattr(value, "__module__", "") or ""
        return f"{module}.{getattr(value, '__qualname__', '?')}" if _is_model_module(module) else None
    func = getattr(value, "func", None)  # functools.partial
    if func is not None and func is not value:
        return _origin(func)
    module = type(value).__module__
    return f"a {type(value).__qualname__} of {module}" if _is_model_module(module) else None


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _scan(fn, found: list[str], seen: set[int], depth: int) -> None:
    if id(fn) in seen or depth > 8 or not hasattr(fn, "__code__"):
        return
    seen.add(id(fn))
    here = getattr(fn, "__qualname__", "the function")

    def consider(what: str, value, nested: int = 0) -> None:
        origin = _origin(value)
        if origin:
            found.append(f"{what} in {here} ({origin})")
        elif isinstance(value, (list, tuple, set, frozenset, dict)) and nested < 2:
            items = list(value.values() if isinstance(value, dict) else value)[:64]
            for item in items:
                if _origin(item) or isinstance(item, (list, tuple, dict)):
                    consider(what, item, nested + 1)
                    break
        elif isinstance(value, types.FunctionType):
            _scan(value, found, seen, depth + 1)  # a helper of the notebook: what does it use?
        elif isinstance(value, type) and value.__module__ == getattr(fn, "__module__", None):
            for member in vars(value).values():
                _scan(member, found, seen, depth + 1)

    namespace = getattr(fn, "__globals__", {})
    for code in _code_objects(fn.__code__):
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = str(ins.argval)
                value = namespace.get(name, _MISSING)
                if value is not _MISSING:
                    consider(f"`{name}`", value)
            elif ins.opname == "IMPORT_NAME" and _is_model_module(str(ins.argval)):
                found.append(f"`import {ins.argval}` in {here}")
            elif ins.opname == "LOAD_CONST" and isinstance(ins.argval, str) and "alexnet_lab" in ins.argval:
                if any(m in ins.argval or m.replace(".", "/") in ins.argval for m in MODEL_CODE):
                    found.append(f"the text {ins.argval[:60]!r} in {here}")
    defaults = list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    for value in defaults:
        consider("a default value", value)
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            consider(f"`{name}`", cell.cell_contents)
        except ValueError:  # an empty cell
            continue


def course_code_in(fn) -> list[str]:
    """What in ``fn`` (and the notebook's functions it calls by name) refers to the course's model code."""
    found: list[str] = []
    _scan(getattr(fn, "func", fn), found, set(), 0)
    return list(dict.fromkeys(found))


def _model_files() -> list[str]:
    import alexnet_lab

    root = os.path.dirname(os.path.realpath(alexnet_lab.__file__))
    return [os.path.join(root, *m.split(".")[1:]) for m in MODEL_CODE]


def _calls_into_model_code(builder, args, kwargs):
    """Call ``builder(*args, **kwargs)`` and record the course's model functions called meanwhile."""
    prefixes = _model_files()
    verdicts: dict[str, bool] = {}
    calls: list[str] = []

    def watch(frame, event, arg):
        if event != "call":
            return
        filename = frame.f_code.co_filename
        hit = verdicts.get(filename)
        if hit is None:
            real = os.path.realpath(filename)
            hit = verdicts[filename] = any(real == p + ".py" or real.startswith(p + os.sep) for p in prefixes)
        if hit and len(calls) < 50:
            calls.append(f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}")

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        model = builder(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return model, list(dict.fromkeys(calls))


def assert_own_code(builder, *args, **kwargs):
    """Build a model with ``builder(*args, **kwargs)``; raise an ``AssertionError`` if that uses the course's model code.

    Returns the model. The message names what was used (``REFERENCE``, ``torch_models.alexnet``...):
    the assignment asks for the layers written out, and the course's builders would pass every check.
    """
    name = getattr(builder, "__name__", "the function")
    found = course_code_in(builder)
    model = None
    if not found:
        model, calls = _calls_into_model_code(builder, args, kwargs)
        found = [f"a call to {c}" for c in calls[:3]]
    if found:
        raise AssertionError(
            f"{name} builds the network with the course's own model code: {'; '.join(found[:3])}. Write the layers "
            "yourself (keras.layers or torch.nn): the course's builders and the reference's records are there to "
            "check a model, not to build it, so the implementation checks score 0 while it uses them.")
    return model
