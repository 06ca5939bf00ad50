"""Task data -> preprocessed frame arrays, with one clear failure reason per broken task.

Only the N frames the model uses are fetched, and each is fetched and decoded on a thread pool
(I/O, and Pillow releases the GIL while decoding): for one 10-frame recording that halves the
latency on two cores. (training.preprocess.frames_to_batch does the same serially from bytes
already in memory.)
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from training.frame_source import FrameError, FrameFetcher, redact_url
from training.preprocess import FrameDecodeError, PreprocessConfig, load_frame, pick_frame_indices


class TaskError(Exception):
    """One task cannot be predicted. `reason` is a short code (a metrics label)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def frame_refs(task: dict, value_key: str) -> list[str]:
    """The task's frame list, validated: a non-empty list of non-empty strings."""
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
            raise TaskError("bad_frames", f"data.{value_key}[{i}] is not a non-empty string: {ref!r}")
    return refs


@dataclass(frozen=True)
class FrameBatchShape:
    frames: int  # N: frames per recording the model takes
    preprocess: PreprocessConfig


class TaskFrameLoader:
    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool

    def submit(self, fetcher: FrameFetcher, refs: list[str], shape: FrameBatchShape) -> list[Future]:
        """Start fetching + decoding the N evenly spaced frames of one task."""
        picked = [refs[i] for i in pick_frame_indices(len(refs), shape.frames)]
        return [self.pool.submit(self._load_one, fetcher, ref, shape.preprocess) for ref in picked]

    @staticmethod
    def _load_one(fetcher: FrameFetcher, ref: str, cfg: PreprocessConfig) -> np.ndarray:
        try:
            data = fetcher.fetch(ref)
        except FrameError as exc:
            raise TaskError("frame_unavailable", str(exc)) from exc  # names the ref, tokens redacted
        try:
            return load_frame(data, cfg)
        except FrameDecodeError as exc:  # corrupt, truncated, not an image, decompression bomb
            raise TaskError("bad_image", f"frame {redact_url(ref)!r} is not a usable image: {exc}") from exc

    @staticmethod
    def collect(futures: list[Future], shape: FrameBatchShape) -> tuple[np.ndarray, np.ndarray]:
        """Wait for one task's frames -> (frames [N,1,S,S], mask [N]); raises the first TaskError."""
        size = shape.preprocess.image_size
        frames = np.zeros((shape.frames, 1, size, size), dtype=np.float32)
        mask = np.zeros((shape.frames,), dtype=np.float32)
        first_error: TaskError | None = None
        for i, future in enumerate(futures):
            try:
                frames[i, 0] = future.result()
                mask[i] = 1.0
            except TaskError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return frames, mask
