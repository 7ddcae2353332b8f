"""Atomic file writes: a reader never sees a half-written file, a killed run loses nothing.

Each writer writes to a temporary file in the destination folder, flushes and
fsyncs it, then ``os.replace``-s it over the destination (atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile


def read_bytes(path, what: str, error: type, missing: type | None = None) -> bytes:
    """The bytes of ``path``; ``missing`` (default ``error``) when it does not exist and
    ``error`` when it cannot be read, both naming the file and ``what`` it is."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise (missing or error)(f"{path}: {what} not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Context manager yielding a file object; the file appears at ``path`` only on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)       # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path, obj, **kwargs) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, **kwargs) + "\n")


def create_exclusive(path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless ``path`` exists: True if this call created
    it, False if another writer (another process) got there first. Never overwrites."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)               # fails if path exists: the exclusive step
            return True
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_savez(path, **arrays) -> None:
    """``numpy.savez`` made atomic (the name is kept exactly; no ``.npz`` is appended)."""
    import numpy as np
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
