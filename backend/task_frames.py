"""Task data -> preprocessed frame arrays, with one clear failure reason per broken task.

Only the N frames the model uses are fetched, and each is fetched and decoded on a thread pool
(I/O, and Pillow releases the GIL while decoding): for one 10-frame recording that halves the
latency on two cores. (training.preprocess.frames_to_batch does the same serially from bytes
already in memory.)

Local files run on the decode pool (one thread per core). Each remote host gets its own pool of
HOST_THREADS threads (at most MAX_HOSTS pools, least recently used dropped), so a slow or dead
host only ever occupies its own threads: tasks whose frames come from elsewhere never queue
behind it. `collect` waits for a task's frames until a deadline; frames not ready by then fail
the task with reason `timeout` and the ones not yet started are cancelled.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from backend.lru import LRU
from training.frame_source import FrameError, FrameFetcher, redact_url, ref_problem
from training.preprocess import FrameDecodeError, PreprocessConfig, load_frame, pick_frame_indices

log = logging.getLogger(__name__)
HOST_THREADS = 4  # concurrent downloads per remote host
MAX_HOSTS = 32  # remote hosts with a pool of their own (only matters with ALLOWED_FRAME_HOSTS=*)
MAX_REF_CHARS = 8192  # a longer frame reference is refused as malformed


class TaskError(Exception):
    """One task cannot be predicted. `reason` is a short code (a metrics label)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def task_id(task: object) -> object:
    """The task's id for logs (None when the task is not even an object)."""
    return task.get("id") if isinstance(task, dict) else None


def frame_refs(task: object, value_key: str) -> list[str]:
    """The task's frame list, validated: a non-empty list of well-formed, non-empty strings."""
    if not isinstance(task, dict):
        raise TaskError("bad_task", f"a task must be a JSON object, got {type(task).__name__}")
    data = task.get("data")
    if not isinstance(data, dict) or value_key not in data:
        raise TaskError("no_frames", f"task data has no {value_key!r} key")
    refs = data[value_key]
    if not isinstance(refs, list):
        raise TaskError("bad_frames", f"data.{value_key} must be a list of frame URLs, got {type(refs).__name__}")
    if not refs:
        raise TaskError("bad_frames", f"data.{value_key} is an empty list")
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref.strip():
            raise TaskError("bad_frames", f"data.{value_key}[{i}] is not a non-empty string "
                                          f"(got {type(ref).__name__})")
        problem = "is longer than %d characters" % MAX_REF_CHARS if len(ref) > MAX_REF_CHARS else ref_problem(ref)
        if problem:  # the value itself is not echoed: it may be huge or carry credentials
            raise TaskError("bad_frames", f"data.{value_key}[{i}] {problem}")
    return refs


@dataclass(frozen=True)
class FrameBatchShape:
    frames: int  # N: frames per recording the model takes
    preprocess: PreprocessConfig


class TaskFrameLoader:
    def __init__(self, pool: ThreadPoolExecutor, host_threads: int = HOST_THREADS, max_hosts: int = MAX_HOSTS):
        self.pool = pool  # local files: decoding is the work
        self.host_threads = host_threads
        self._host_pools: LRU[str, ThreadPoolExecutor] = LRU(
            max_hosts, on_evict=lambda p: p.shutdown(wait=False))  # running downloads finish on their own

    def pool_for(self, host: str | None) -> ThreadPoolExecutor:
        if host is None:
            return self.pool
        return self._host_pools.get_or_create(host, lambda: ThreadPoolExecutor(
            self.host_threads, thread_name_prefix=f"frames-{host}"))

    def submit(self, fetcher: FrameFetcher, refs: list[str], shape: FrameBatchShape) -> list[tuple[str, Future]]:
        """Start fetching + decoding the N evenly spaced frames of one task: [(ref, future)]."""
        picked = [refs[i] for i in pick_frame_indices(len(refs), shape.frames)]
        return [(ref, self.pool_for(fetcher.host_of(ref)).submit(self._load_one, fetcher, ref, shape.preprocess))
                for ref in picked]

    @staticmethod
    def _load_one(fetcher: FrameFetcher, ref: str, cfg: PreprocessConfig) -> np.ndarray:
        try:
            data = fetcher.fetch(ref)
        except FrameError as exc:
            raise TaskError("frame_unavailable", str(exc)) from exc  # names the ref, tokens redacted
        except Exception as exc:  # a bug or an input nobody foresaw: this task fails, the batch goes on
            log.exception("fetching frame %r failed unexpectedly", redact_url(ref))
            raise TaskError("frame_unavailable", f"frame {redact_url(ref)!r}: {type(exc).__name__}") from exc
        try:
            return load_frame(data, cfg)
        except FrameDecodeError as exc:  # corrupt, truncated, not an image, decompression bomb
            raise TaskError("bad_image", f"frame {redact_url(ref)!r} is not a usable image: {exc}") from exc
        except Exception as exc:
            log.exception("decoding frame %r failed unexpectedly", redact_url(ref))
            raise TaskError("bad_image", f"frame {redact_url(ref)!r}: {type(exc).__name__}") from exc

    @staticmethod
    def collect(started: list[tuple[str, Future]], shape: FrameBatchShape,
                deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Wait (until the monotonic `deadline`, if given) for one task's frames
        -> (frames [N,1,S,S], mask [N]); raises the first TaskError, or a `timeout` one."""
        size = shape.preprocess.image_size
        frames = np.zeros((shape.frames, 1, size, size), dtype=np.float32)
        mask = np.zeros((shape.frames,), dtype=np.float32)
        first_error: TaskError | None = None
        for i, (ref, future) in enumerate(started):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                frames[i, 0] = future.result(timeout=left)
                mask[i] = 1.0
            except TaskError as exc:
                first_error = first_error or exc
            except FutureTimeout:
                for _, later in started[i:]:
                    later.cancel()  # not started yet: never will be
                raise TaskError("timeout", f"frame {redact_url(ref)!r} not ready in time "
                                           "(its host is slow or unreachable)") from None
        if first_error is not None:
            raise first_error
        return frames, mask
