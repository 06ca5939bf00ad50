"""Recordings as torch datasets: frames preloaded once, labels as int [L] with -1 = missing.

`load_recordings` fetches, decodes and preprocesses every recording's frames ONCE and caches them on
disk per recording (uint8 pixel codes, or float16 when standardising), so re-runs skip the decoding
that costs as much as the model itself (docs/training.md, "CPU facts"). A recording with a frame that cannot be
fetched or decoded is reported (recording id + reason) and left out. The frames are then read from
those files by index (`DataConfig.store="disk"`, memory that does not grow with the dataset) or held
in RAM (`"ram"`); training/frame_store.py.

Two views over the same store: `RecordingDataset` (N frames per recording, padded + masked; the
multi-image model's training items and every recording-level evaluation) and `FrameDataset` (one
frame per item carrying its recording's labels; single-image training).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from training.config import DataConfig
from training.frame_store import DiskFrames, FrameStoreWriter, RamFrames
from training.preprocess import PreprocessConfig, load_frame, pick_frame_indices
from training.schema import LabelSchema

CACHE_FORMAT = 1


class FrameLoadError(RuntimeError):
    """A frame could not be fetched or decoded."""


@dataclass(frozen=True)
class BrokenRecording:
    recording_id: str
    reason: str


@dataclass
class RecordingStore:
    """Preprocessed frames of every usable recording, in one order shared with `labels` rows."""

    recording_ids: list[str]
    subject_ids: list[str]
    frames: DiskFrames | RamFrames  # per recording [n_i, S, S], uint8 codes or float16 (see `images`)
    labels: np.ndarray  # [R, L] int64, schema order, -1 = missing
    preprocess: PreprocessConfig
    broken: list[BrokenRecording]

    def rows(self, recording_ids: Sequence[str]) -> list[int]:
        """Row numbers of the given recordings; ids of broken/unknown recordings are skipped."""
        where = {rid: i for i, rid in enumerate(self.recording_ids)}
        return [where[r] for r in recording_ids if r in where]

    def frame_count(self, row: int) -> int:
        return self.frames.count(row)

    def images(self, row: int, indices: Sequence[int]) -> np.ndarray:
        """Frames `indices` of recording `row` as float32 [k, 1, S, S] model input."""
        return _from_storage(self.frames.read(row, list(indices)), self.preprocess)[:, None]


def label_matrix(recordings, schema: LabelSchema) -> np.ndarray:
    """[R, L] class indices in schema order, -1 where a recording has no label."""
    out = np.full((len(recordings), len(schema.labels)), -1, dtype=np.int64)
    for r, rec in enumerate(recordings):
        for col, spec in enumerate(schema.labels):
            cls = rec.labels.get(spec.name)
            if cls is None:
                continue
            if cls not in spec.classes:
                raise ValueError(f"recording {rec.recording_id!r}: label {spec.name!r} has unknown class {cls!r}")
            out[r, col] = spec.classes.index(cls)
    return out


def subsample_labels(labels: np.ndarray, rows: Sequence[int], fraction: float, seed: int,
                     per_class: bool = False) -> np.ndarray:
    """Keep `fraction` of each label's annotations among `rows` (seeded); other rows stay untouched.

    For label-budget experiments: at least one annotation per label survives when fraction > 0. With
    `per_class`, the same number is kept, but one annotation of each class is drawn first (of as many
    randomly chosen classes as the number allows), then the rest at random.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label fraction must be in [0, 1]; got {fraction}")
    out = labels.copy()
    if fraction == 1.0:
        return out
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows, dtype=np.int64)
    for col in range(labels.shape[1]):
        have = rng.permutation(rows[labels[rows, col] >= 0])
        keep = 0 if fraction == 0.0 or len(have) == 0 else max(1, round(fraction * len(have)))
        if per_class and keep:
            classes = labels[have, col]
            firsts = [have[classes == c][0] for c in rng.permutation(np.unique(classes))][:keep]
            taken = set(firsts)
            have = np.array(firsts + [r for r in have if r not in taken], dtype=np.int64)
        out[have[keep:], col] = -1
    return out


def label_counts(schema: LabelSchema, labels: np.ndarray, rows: Sequence[int]) -> dict[str, dict[str, int]]:
    """{label: {class: number of annotations among `rows`}}: what a training run really learns from."""
    block = labels[np.asarray(rows, dtype=np.int64)] if len(rows) else labels[:0]
    return {spec.name: {c: int((block[:, j] == k).sum()) for k, c in enumerate(spec.classes)}
            for j, spec in enumerate(schema.labels)}


def load_recordings(
    recordings,
    schema: LabelSchema,
    cfg: DataConfig,
    fetch: Callable[[str], bytes],
    cache_dir: Path | None,
    *,
    source: str = "",
    progress: bool = True,
) -> RecordingStore:
    """Preload (or read from cache) the frames of `recordings`; report and skip broken ones.

    Cache entries are keyed by the frame refs, the preprocessing and `source` (what the refs are
    relative to, e.g. the document root): files changed behind an unchanged ref need a fresh cache.
    """
    pre = PreprocessConfig(image_size=cfg.image_size, standardize=cfg.standardize, mean=cfg.mean, std=cfg.std)
    labels = label_matrix(recordings, schema)
    writer = FrameStoreWriter(cfg.store, None if cache_dir is None else Path(cache_dir))
    kept, broken = [], []
    for r, rec in enumerate(tqdm(recordings, desc="frames", unit="rec", disable=None if progress else True)):
        refs = list(rec.frames)
        if not refs:
            broken.append(BrokenRecording(rec.recording_id, "no frames"))
            continue
        refs = [refs[i] for i in pick_frame_indices(len(refs), min(len(refs), cfg.max_preload_frames))]
        key = json.dumps([CACHE_FORMAT, source, refs, pre.image_size, pre.standardize, pre.mean, pre.std])
        try:
            writer.add(key, lambda: np.stack([_to_storage(_load_one(ref, fetch, pre), pre) for ref in refs]))
        except FrameLoadError as exc:  # loses this recording only; the caller reports `broken`
            broken.append(BrokenRecording(rec.recording_id, str(exc)))
            continue
        kept.append(r)
    return RecordingStore(
        recording_ids=[recordings[r].recording_id for r in kept],
        subject_ids=[recordings[r].subject_id for r in kept],
        frames=writer.finish(),
        labels=labels[kept],
        preprocess=pre,
        broken=broken,
    )


def _load_one(ref: str, fetch, pre: PreprocessConfig) -> np.ndarray:
    try:
        return load_frame(fetch(ref), pre)
    except Exception as exc:  # fetch (FrameError, HTTP) and decode (PIL, OSError) failures alike
        raise FrameLoadError(f"frame {ref!r}: {type(exc).__name__}: {exc}") from exc


def _to_storage(x: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    if pre.standardize:
        return x.astype(np.float16)
    return np.rint((x + 1.0) * 128.0).clip(0, 255).astype(np.uint8)  # x = pixel / 128 - 1 exactly


def _from_storage(a: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 128.0 - 1.0
    return a.astype(np.float32)


def jittered_indices(n_available: int, n: int, rng: np.random.Generator) -> list[int]:
    """One random index inside each of n equal bins (all indices when there are at most n)."""
    if n_available <= n:
        return list(range(n_available))
    edges = np.floor(np.linspace(0, n_available, n + 1)).astype(np.int64)
    return [int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]


class RecordingDataset(Dataset):
    """Items (frames [N,1,S,S], mask [N], targets [L], row): N frames per recording, padded + masked.

    With `jitter`, training picks a random frame per bin, seeded by (seed, epoch, row) so every
    epoch differs yet a rerun or resume sees the same frames.
    """

    def __init__(self, store: RecordingStore, rows: Sequence[int], targets: np.ndarray, frames: int,
                 *, jitter: bool = False, seed: int = 0):
        self.store, self.rows, self.targets = store, list(rows), targets
        self.n, self.jitter, self.seed, self.epoch = frames, jitter, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def item_rows(self) -> list[int]:
        """The store row of every item, in item order."""
        return self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        available = self.store.frame_count(row)
        if self.jitter:
            idx = jittered_indices(available, self.n, np.random.default_rng((self.seed, self.epoch, row)))
        else:
            idx = pick_frame_indices(available, self.n)
        imgs = self.store.images(row, idx)
        frames = np.zeros((self.n,) + imgs.shape[1:], dtype=np.float32)
        frames[: len(idx)] = imgs
        mask = np.zeros(self.n, dtype=np.float32)
        mask[: len(idx)] = 1.0
        return torch.from_numpy(frames), torch.from_numpy(mask), torch.from_numpy(self.targets[row]), row


class FrameDataset(Dataset):
    """Items (image [1,S,S], targets [L], row): every preloaded frame with its recording's labels."""

    def __init__(self, store: RecordingStore, rows: Sequence[int], targets: np.ndarray):
        self.store, self.targets = store, targets
        self.items = [(row, k) for row in rows for k in range(store.frame_count(row))]

    def set_epoch(self, epoch: int) -> None:  # same interface as RecordingDataset; nothing is random here
        pass

    @property
    def item_rows(self) -> list[int]:
        return [row for row, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        row, k = self.items[i]
        return torch.from_numpy(self.store.images(row, [k])[0]), torch.from_numpy(self.targets[row]), row
