"""Batches reach the model while the next ones are assembled (frames read, uint8 -> float32, stacked).

`loader_workers=0` (the default, and the right choice on a CPU where the model uses every core): the
loader is iterated by one background thread that keeps `depth` batches ready; reading and converting
frames is numpy and torch work that releases the GIL, so it overlaps the model's forward and backward.
`loader_workers=N`: the DataLoader's own N worker processes do it (a GPU machine with spare cores).

On CUDA every batch is put in pinned (page-locked) memory — by the DataLoader (`pin_memory`) or by the
thread — so `to_device` copies it to the GPU without blocking. Nothing is pinned on a CPU.

Order and contents stay the loader's, so a run's numbers do not depend on how batches are fed: the
loader's iterator is created in the calling thread (a DataLoader draws its base seed from torch's
global generator there, as a plain loop would), and every item depends only on its index and epoch.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

import torch
from torch.utils.data import DataLoader

_END = object()


def pins(device: str) -> bool:
    """Whether batches for `device` go through pinned memory (CUDA only; pinning needs a CUDA runtime)."""
    return device.startswith("cuda") and torch.cuda.is_available()


def make_loader(dataset, *, device: str, workers: int = 0, **kwargs) -> DataLoader:
    """A DataLoader with `workers` processes, pinning batches for a CUDA `device`."""
    return DataLoader(dataset, num_workers=workers, pin_memory=pins(device) and workers > 0, **kwargs)


def feed(loader: DataLoader, device: str, depth: int = 2) -> Iterator:
    """The loader's batches in order; with no worker processes, `depth` of them prepared by a thread."""
    if loader.num_workers > 0:
        yield from loader
        return
    stop = threading.Event()
    ready: queue.Queue = queue.Queue(maxsize=depth)
    worker = threading.Thread(target=_fill, args=(iter(loader), ready, stop, pins(device)), daemon=True)
    worker.start()
    try:
        while True:
            batch, error = ready.get()
            if error is not None:
                raise error
            if batch is _END:
                return
            yield batch
    finally:  # the consumer may stop early (an exception, a bounded benchmark): let the thread finish
        stop.set()
        worker.join()


def to_device(t: torch.Tensor, device: str) -> torch.Tensor:
    """Copy to `device`; from pinned memory the copy to a GPU does not block the host."""
    return t.to(device, non_blocking=True)


def _fill(batches: Iterator, ready: queue.Queue, stop: threading.Event, pin: bool) -> None:
    try:
        for batch in batches:
            if pin:
                batch = _pinned(batch)
            if not _put(ready, (batch, None), stop):
                return
        _put(ready, (_END, None), stop)
    except BaseException as exc:  # handed to the consumer, who raises it
        _put(ready, (None, exc), stop)


def _put(ready: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _pinned(batch):
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, (list, tuple)):
        return type(batch)(_pinned(b) for b in batch)
    return batch
