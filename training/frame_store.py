"""Where a run's preprocessed frames live: on disk, read by index ("disk", the default), or in RAM ("ram").

Both build on the per-recording cache: one `.npy` file per recording ([n, S, S] uint8 pixel codes, or
float16 when standardising), named by a key of its frame refs and preprocessing, reused across runs
and written atomically. "ram" loads every file into memory (about 1.6 MB a recording at 224 px and
32 frames). "disk" keeps only each file's path, data offset and shape, and reads the frames an item
needs when it needs them, so the process's memory does not grow with the dataset; the operating
system's page cache keeps recently read files in otherwise free RAM.

The files are plain `.npy`, so `np.load(path, mmap_mode="r")` opens any of them as a memory map. The
store reads with ordinary positioned file reads instead: pages of a memory map that a process has
touched count in its resident memory (RSS) until unmapped, so an epoch over a mapped dataset would
show RSS growing to the dataset's size, while pages read into a buffer stay in the kernel's cache.
Without a cache directory, "disk" writes the files to a temporary directory removed with the store.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from training.atomic_write import atomic_path

STORES = ("disk", "ram")


@dataclass(frozen=True)
class CachedArray:
    """Where one recording's frames lie inside its `.npy` file."""

    path: str
    offset: int  # bytes before the data (the .npy header)
    shape: tuple[int, ...]  # [n, S, S]
    dtype: str


class RamFrames:
    """Every recording's frames in memory: `frames[row]` is its [n, S, S] array."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.arrays[row]

    def count(self, row: int) -> int:
        return len(self.arrays[row])

    def read(self, row: int, indices: Sequence[int]) -> np.ndarray:
        return self.arrays[row][list(indices)]


class DiskFrames:
    """Every recording's frames in its cache file, read by index; `frames[row]` reads all of them."""

    def __init__(self, entries: list[CachedArray], temporary: Path | None = None):
        self.entries = entries
        # A temporary directory goes with the store; the finalizer stays with this process (see __getstate__).
        self._cleanup = weakref.finalize(self, _remove, temporary, os.getpid()) if temporary else None

    def __getstate__(self) -> dict:  # DataLoader workers get the entries, never the right to delete files
        return {"entries": self.entries, "_cleanup": None}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.read(row, range(self.entries[row].shape[0]))

    def count(self, row: int) -> int:
        return self.entries[row].shape[0]

    def read(self, row: int, indices: Sequence[int]) -> np.ndarray:
        e = self.entries[row]
        out = np.empty((len(indices),) + e.shape[1:], dtype=e.dtype)
        size = out[0].nbytes if len(out) else 0
        with open(e.path, "rb", buffering=0) as fh:
            for slot, k in enumerate(indices):
                if not 0 <= k < e.shape[0]:
                    raise IndexError(f"frame {k} of {e.path}: the recording has {e.shape[0]} frames")
                fh.seek(e.offset + k * size)
                if fh.readinto(memoryview(out[slot]).cast("B")) != size:
                    raise OSError(f"{e.path}: file shorter than its header says (changed after the run started?)")
        return out


class FrameStoreWriter:
    """Collects recordings' frames into a "disk" or "ram" store, going through the cache in `directory`."""

    def __init__(self, kind: str, directory: Path | None):
        if kind not in STORES:
            raise ValueError(f"data.store must be one of {STORES}; got {kind!r}")
        self.kind, self.directory, self.temporary = kind, directory, None
        if kind == "disk" and directory is None:
            self.directory = self.temporary = Path(tempfile.mkdtemp(prefix="recmeta-frames-"))
        self.items: list = []

    def add(self, key: str, make: Callable[[], np.ndarray]) -> None:
        """Append the frames cached under `key`, calling `make()` on a miss (its errors propagate)."""
        path = None if self.directory is None else self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.npy"
        entry = _entry(path) if path is not None and path.exists() else None
        array = None
        if entry is None:
            array = make()
            if path is not None:
                _write_atomically(path, array)
                entry = _entry(path)
        if self.kind == "disk":
            self.items.append(entry)
        else:
            self.items.append(array if array is not None else np.load(path))

    def finish(self) -> RamFrames | DiskFrames:
        if self.kind == "ram":
            return RamFrames(self.items)
        return DiskFrames(self.items, self.temporary)


def _remove(directory: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked DataLoader worker's copy of the store must not delete the files
        shutil.rmtree(directory, ignore_errors=True)


def _entry(path: Path) -> CachedArray | None:
    """The layout of a cached `.npy` file; None for a file that is not a complete C-order array (rebuilt)."""
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
            complete = os.fstat(fh.fileno()).st_size == offset + int(np.prod(shape)) * dtype.itemsize
    except (OSError, ValueError):
        return None
    if fortran or dtype.hasobject or len(shape) != 3 or not complete:
        return None
    return CachedArray(str(path), offset, tuple(int(n) for n in shape), dtype.str)


def _write_atomically(path: Path, array: np.ndarray) -> None:
    """Parallel ranks and runs never read half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
