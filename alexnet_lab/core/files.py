"""Writing files safely: a write that fails (full disk, Ctrl-C, an exception) never leaves a corrupt file.

Every file the package writes (checkpoints, histories, figures, JSON records, notebooks, data caches)
goes through one of these helpers. Each writes to a temporary file beside the target and renames it
into place (``os.replace``, atomic on one file system), so ``path`` is always either the old file,
absent, or complete; the temporary file is removed when the write fails. New files get the usual
permissions (``0o666`` minus the umask), unlike ``tempfile.mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "atomic_write_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) for code that writes by file name; renamed when the block ends.

    For libraries that want a file name rather than an open file, e.g. ``keras.Model.save``::

        with atomic_path("model.keras") as tmp:
            model.save(tmp)

    Missing folders are created. If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], *, text: bool = False,
                 fsync: bool = False) -> Path:
    """Create or replace ``path`` with what ``write(f)`` writes to an open file; returns the path.

    ``text=True`` opens the file for UTF-8 text (newlines as written), else binary. ``fsync=True``
    also flushes it to the disk before the rename (for checkpoints and caches that must survive a crash).
    """
    with atomic_path(path) as tmp:
        # "x": never reuse an existing file; open() keeps the usual permissions (umask)
        with open(tmp, "x", encoding="utf-8", newline="") if text else open(tmp, "xb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Create or replace ``path`` with ``text`` (UTF-8), atomically."""
    return atomic_write(path, lambda f: f.write(text), text=True)


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int = 1) -> Path:
    """Create or replace ``path`` with ``data`` as JSON (ending with a newline), atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
