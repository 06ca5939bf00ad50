"""Generated recordings of drawn "faces" whose features encode the eleven default labels.

For tests and the demo only. Each recording is a folder of greyscale PNG frames drawn by
synthetic_faces.py (which feature shows which label is listed there). Subjects keep gender, eye
colour, skin tone and face width; everything else varies per recording.

Output (``generate(out_dir)`` or ``python -m training.synthetic --out DIR``):
``DIR/frames/<recording_id>/NN.png``, ``DIR/tasks.json`` (Label Studio import), ``DIR/export.json``
(Label Studio JSON export, each question answered on a random ``label_fraction`` of the recordings,
some tasks without any annotation) and ``DIR/truth.csv`` (every label). Frame URLs are
``/data/local-files/?d=<DIR name>/frames/...``: DIR's PARENT is the LOCAL_FILES_DOCUMENT_ROOT.
"""
from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image

from training.schema import LabelSchema, load_label_config
from training.synthetic_faces import IRIS_LEVEL, render_face, render_frame

# Class probabilities per recording (subject-level labels are drawn once per subject).
GLASSES_P = {"Glasses Kind None": 0.45, "Glasses Kind Transparent": 0.25,
             "Glasses Kind Semi-Transparent": 0.15, "Glasses Kind Blocking": 0.15}
MASK_P = {"Face Mask Kind None": 0.55, "Face Mask Kind Black": 0.15,
          "Face Mask Kind White": 0.15, "Face Mask Kind RGB": 0.15}
EARS_P = {"Ears Fully Occluded": 0.3, "Ears Partly Visible": 0.3, "Ears Fully Visible": 0.4}


@dataclass(frozen=True)
class SyntheticConfig:
    recordings: int = 48
    subjects: int = 16
    frames: int = 10  # frames per recording
    size: int = 96  # frame side in pixels
    label_fraction: float = 0.5  # share of recordings on which each question is answered
    unannotated_fraction: float = 0.1  # share of tasks left without any annotation
    hand_probability: float = 0.15  # chance that a frame has an occluding "hand" blob
    seed: int = 0


@dataclass(frozen=True)
class SyntheticPaths:
    root: Path
    frames_dir: Path
    tasks: Path
    export: Path
    truth: Path


def _pick(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    return keys[rng.choice(len(keys), p=np.array([probs[k] for k in keys]))]


def draw_labels(rng: np.random.Generator, subject: dict) -> dict[str, str]:
    """One recording's labels, consistent with the propagation rules."""
    mask = _pick(rng, MASK_P)
    glasses = _pick(rng, GLASSES_P)
    has_mask = mask != "Face Mask Kind None"
    nose_hidden = has_mask and rng.random() < 0.4
    chin_hidden = has_mask or rng.random() < 0.15  # collar
    return {
        "gender": subject["gender"],
        "car_recording": "In Car" if rng.random() < 0.5 else "In Lab",
        "ears_visibility": _pick(rng, EARS_P),
        "chin_visibility": "Chin Fully Occluded" if chin_hidden else "Chin Fully Visible",
        "glasses_kind": glasses,
        "mouth_visibility": "Mouth Fully Occluded" if has_mask else "Mouth Fully Visible",
        "nose_visibility": "Nose Fully Occluded" if nose_hidden else "Nose Fully Visible",
        "eye_color": subject["eye_color"],
        "face_mask_kind": mask,
        "wearing_glasses": "Wears No Glasses" if glasses == "Glasses Kind None" else "Wears Glasses",
        "wearing_face_mask": "Wears Face Mask" if has_mask else "Wears No Face Mask",
    }


def _check_schema(schema: LabelSchema, labels: dict[str, str]) -> None:
    for name, cls in labels.items():
        if not schema.has_class(name, cls):
            raise ValueError(f"synthetic label {name}={cls!r} is not in the label config {schema.names}")


def _annotations(rng: np.random.Generator, truth: list[dict], cfg: SyntheticConfig, names) -> list[list[str]]:
    """Which questions are answered per task: each on a random label_fraction of all recordings,
    drawn from the tasks that are not left unannotated."""
    n = len(truth)
    pool = rng.permutation(n)[round(cfg.unannotated_fraction * n):]
    answered: list[list[str]] = [[] for _ in range(n)]
    for name in names:
        k = min(len(pool), round(cfg.label_fraction * n))
        for i in rng.choice(pool, size=k, replace=False):
            answered[i].append(name)
    return answered


def generate(out_dir: str | Path, config: SyntheticConfig | None = None, **overrides) -> SyntheticPaths:
    """Write a synthetic dataset into out_dir (see the module doc); keyword overrides set config fields."""
    cfg = replace(config or SyntheticConfig(), **overrides)
    if cfg.recordings < 1 or cfg.subjects < 1 or cfg.frames < 1 or cfg.size < 32:
        raise ValueError(f"synthetic config needs recordings, subjects, frames >= 1 and size >= 32: {cfg}")
    if not 0.0 <= cfg.label_fraction <= 1.0 or not 0.0 <= cfg.unannotated_fraction < 1.0:
        raise ValueError(f"label_fraction must be in [0,1] and unannotated_fraction in [0,1): {cfg}")
    schema = load_label_config()
    root = Path(out_dir)
    paths = SyntheticPaths(root, root / "frames", root / "tasks.json", root / "export.json", root / "truth.csv")
    rng = np.random.default_rng(cfg.seed)
    subjects = [{"id": f"subj_{i:04d}", "gender": "Female" if rng.random() < 0.5 else "Male",
                 "eye_color": str(rng.choice(list(IRIS_LEVEL))), "skin": int(rng.integers(150, 200)),
                 "face_width": float(rng.uniform(0.9, 1.1)),
                 "offset": (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.03, 0.05))),
                 "scene": rng.uniform(-1, 1, (4, 4))}
                for i in range(cfg.subjects)]
    # every subject gets at least one recording, the rest are spread at random
    owner = np.concatenate([np.arange(cfg.subjects), rng.integers(0, cfg.subjects, max(0, cfg.recordings - cfg.subjects))])
    owner = np.sort(owner[: cfg.recordings])
    truth, tasks = [], []
    for r, subj_index in enumerate(owner):
        subject = subjects[subj_index]
        rid = f"rec_{r:04d}"
        labels = draw_labels(rng, subject)
        _check_schema(schema, labels)
        base = render_face(labels, subject, cfg.size)
        folder = paths.frames_dir / rid
        folder.mkdir(parents=True, exist_ok=True)
        urls = []
        for f in range(cfg.frames):
            Image.fromarray(render_frame(base, rng, cfg.size, cfg.hand_probability)).save(folder / f"{f:02d}.png")
            urls.append(f"/data/local-files/?d={root.name}/frames/{rid}/{f:02d}.png")
        truth.append({"recording_id": rid, "subject_id": subject["id"], **labels})
        tasks.append({"data": {schema.value_key: urls, "recording_id": rid, "subject_id": subject["id"]}})
    answered = _annotations(rng, truth, cfg, schema.names)
    export = []
    for i, (task, row, names) in enumerate(zip(tasks, truth, answered)):
        result = [{"from_name": n, "to_name": schema.object_name, "type": "choices", "value": {"choices": [row[n]]}}
                  for n in schema.names if n in names]
        annotations = [{"id": i + 1, "completed_by": 1, "result": result, "was_cancelled": False,
                        "ground_truth": False, "task": i + 1, "project": 1}] if result else []
        export.append({"id": i + 1, "annotations": annotations, "drafts": [], "predictions": [],
                       "data": task["data"], "meta": {}, "project": 1})
    paths.tasks.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    paths.export.write_text(json.dumps(export, indent=1), encoding="utf-8")
    with paths.truth.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["recording_id", "subject_id", *schema.names])
        writer.writeheader()
        writer.writerows(truth)
    return paths


def random_recordings(schema: LabelSchema, subjects: int, seed: int = 0, max_recordings: int = 5,
                      label_probability: float = 0.4) -> list:
    """In-memory recordings without frames (for split/stats tests and benchmarks): 1..max_recordings
    per subject, each label answered with label_probability and a random class."""
    from training.export_reader import Recording

    rng = np.random.default_rng(seed)
    recs = []
    for s in range(subjects):
        for k in range(int(rng.integers(1, max_recordings + 1))):
            labels = {spec.name: spec.classes[int(rng.integers(len(spec.classes)))]
                      for spec in schema.labels if rng.random() < label_probability}
            recs.append(Recording(len(recs) + 1, f"rec_{s:05d}_{k}", f"subj_{s:05d}", (), labels,
                                  dict.fromkeys(labels, "annotation"), {}))
    return recs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder; its parent is the LOCAL_FILES_DOCUMENT_ROOT")
    defaults = SyntheticConfig()
    for f in fields(SyntheticConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                        default=getattr(defaults, f.name))
    args = vars(ap.parse_args(argv))
    out = args.pop("out")
    paths = generate(out, SyntheticConfig(**args))
    print(f"wrote {paths.tasks}, {paths.export}, {paths.truth} and frames under {paths.frames_dir}")


if __name__ == "__main__":
    main()
