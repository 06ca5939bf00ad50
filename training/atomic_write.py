"""Atomic file writes: a temp file in the target's folder, then os.replace, so a reader (another process, a
parallel run, the serving backend) sees the old file or the whole new one, never half of it. Standard library only
(serving imports it; no torch)."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, *, mode: int | None = None, fsync: bool = False) -> Iterator[Path]:
    """Yield a fresh temp path beside `path` for the caller to write; when the block ends without an error the temp
    file replaces `path` (after chmod `mode` and fsync, when asked); on an error it is removed and `path` is left
    as it was, and so it is when the block deletes the temp file (a candidate it decided not to keep). `mode` None
    keeps mkstemp's owner-only permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.exists():
            return
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes, *, mode: int | None = None, fsync: bool = True) -> None:
    """`data` to `path` atomically (fsynced by default: a crash leaves the old or the new file)."""
    with atomic_path(path, mode=mode, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str, *, mode: int | None = None, fsync: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode, fsync=fsync)
