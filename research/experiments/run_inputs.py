"""What a finished experiment run trained and was scored on, rebuilt from its config.json: the checks that
reload a run's checkpoints (bn_check, step_check) share it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config import FitConfig
from training.dataset import RecordingStore, load_recordings, subsample_labels
from training.evaluate import read_truth_csv
from training.export_reader import read_export
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.schema import LabelSchema, load_label_config


@dataclass
class RunInputs:
    cfg: FitConfig
    schema: LabelSchema
    split: dict  # split.json: {"recordings": {"train": [...], "val": [...], "test": [...]}, ...}
    store: RecordingStore  # the split's recordings, preprocessed as the run saw them
    truth: np.ndarray  # [R, L] class index per store row from truth.csv, -1 = unknown

    def rows(self, part: str) -> list[int]:
        return self.store.rows(self.split["recordings"][part])

    def train_targets(self) -> np.ndarray:
        """The run's training labels: the export's annotations with its label fraction applied (same seed)."""
        d = self.cfg.data
        return subsample_labels(self.store.labels, self.rows("train"), d.label_fraction, d.label_fraction_seed,
                                d.label_fraction_per_class)


def run_inputs(run: Path, truth_csv: Path, stores: dict | None = None) -> RunInputs:
    """Inputs of the run in `run`; `stores` (optional) shares loaded frames between runs of one preprocessing."""
    cfg = FitConfig.from_json((run / "config.json").read_text(encoding="utf-8"))
    schema = load_label_config(cfg.label_config)
    split = json.loads(Path(cfg.split).read_text(encoding="utf-8"))
    wanted = frozenset(rid for part in ("train", "val", "test") for rid in split["recordings"][part])
    key = (cfg.export, cfg.data.frames, cfg.data.image_size, cfg.data.max_preload_frames, wanted)
    stores = {} if stores is None else stores
    if key not in stores:
        stores[key] = _load(cfg, schema, wanted, truth_csv)
    return RunInputs(cfg, schema, split, *stores[key])


def _load(cfg: FitConfig, schema: LabelSchema, wanted: frozenset, truth_csv: Path) -> tuple[RecordingStore, np.ndarray]:
    recordings = [r for r in read_export(cfg.export, schema).recordings if r.recording_id in wanted]
    fetch = FrameFetcher(FrameSourceConfig(document_root=cfg.data_root)).fetch
    store = load_recordings(recordings, schema, cfg.data, fetch, Path(cfg.data.cache_dir), progress=False)
    return store, truth_matrix(read_truth_csv(truth_csv, schema), schema, store.recording_ids)


def truth_matrix(truth: dict[str, dict[str, str]], schema: LabelSchema, recording_ids) -> np.ndarray:
    """[R, L] class index of each recording's truth.csv label (read_truth_csv), -1 where unknown."""
    return np.array([[schema[n].index(truth[rid][n]) if n in truth.get(rid, {}) else -1 for n in schema.names]
                     for rid in recording_ids], dtype=np.int64).reshape(-1, len(schema.names))
