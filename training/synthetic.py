"""Generated recordings of drawn "faces" whose features encode the eleven default labels.

For tests and the demo only. Each recording is a folder of greyscale PNG frames; the drawing
makes every label visible (at 64 px and up):

- gender: hair length (Female: long hair down beside the neck; Male: short cap only)
- eye_color: iris brightness (Blue light, Gray mid, Green darker, Brown near black) - per subject
- car_recording: In Car = dark cabin with a steering-wheel arc at the bottom; In Lab = plain bright wall
- ears_visibility: hair blocks over none / the upper half / all of each ear
- glasses_kind: none / thin outline (Transparent) / grey see-through lenses / black lenses (Blocking)
- face_mask_kind: none / black / white / checkered ("RGB") mask over mouth and chin; a mask pulled
  up over the nose makes the nose occluded
- chin_visibility: a mask, or (without one) a high collar, covers the chin
- wearing_glasses / wearing_face_mask follow from the kinds (None <=> no).

Subjects keep gender, eye colour, skin tone and face width; everything else varies per recording.
Frames of one recording differ by jitter (shift, rotation, scale), brightness, noise and sometimes
an occluding "hand", so several frames help.

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
from PIL import Image, ImageDraw

from training.schema import LabelSchema, load_label_config

# Class probabilities per recording (subject-level labels are drawn once per subject).
GLASSES_P = {"Glasses Kind None": 0.45, "Glasses Kind Transparent": 0.25,
             "Glasses Kind Semi-Transparent": 0.15, "Glasses Kind Blocking": 0.15}
MASK_P = {"Face Mask Kind None": 0.55, "Face Mask Kind Black": 0.15,
          "Face Mask Kind White": 0.15, "Face Mask Kind RGB": 0.15}
EARS_P = {"Ears Fully Occluded": 0.3, "Ears Partly Visible": 0.3, "Ears Fully Visible": 0.4}
IRIS_LEVEL = {"Blue": 215, "Gray": 150, "Green": 95, "Brown": 30}
MASK_LEVEL = {"Face Mask Kind Black": 25, "Face Mask Kind White": 240}
SUPERSAMPLE = 2  # draw at 2x and downsample: smooth edges for thin outlines


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


def _ellipse(d: ImageDraw.ImageDraw, s: float, cx, cy, rx, ry, **kw) -> None:
    d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], **kw)


def render_face(labels: dict[str, str], subject: dict, size: int) -> Image.Image:
    """The recording's base picture (SUPERSAMPLE x size), before per-frame variation."""
    s = size * SUPERSAMPLE
    in_car = labels["car_recording"] == "In Car"
    # each subject's own surroundings: a faint smooth pattern behind them (keeps different people
    # from hashing alike in near_duplicates; the car/lab cue stays the overall level and the wheel)
    scene = (70 if in_car else 205) + subject["scene"] * (25 if in_car else 40)
    img = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)).resize((s, s), Image.BICUBIC)
    d = ImageDraw.Draw(img)
    fw, skin, hair = 0.25 * subject["face_width"], subject["skin"], 45
    if in_car:  # side window: a bright trapezoid top-left
        d.polygon([(0.02 * s, 0.05 * s), (0.2 * s, 0.05 * s), (0.14 * s, 0.4 * s), (0.02 * s, 0.4 * s)], fill=150)
    if labels["gender"] == "Female":  # long hair behind the head down past the chin
        d.rectangle([(0.5 - fw - 0.07) * s, 0.3 * s, (0.5 + fw + 0.07) * s, 0.97 * s], fill=hair)
    for side in (-1, 1):  # ears
        _ellipse(d, s, 0.5 + side * (fw + 0.015), 0.47, 0.04, 0.075, fill=skin - 20, outline=60, width=SUPERSAMPLE)
    _ellipse(d, s, 0.5, 0.48, fw, 0.33, fill=skin)
    _ellipse(d, s, 0.5, 0.2, fw + 0.01, 0.13, fill=hair)  # hair cap
    d.rectangle([(0.5 - fw) * s, 0.2 * s, (0.5 + fw) * s, 0.25 * s], fill=hair)
    ear_cover = {"Ears Fully Occluded": 0.57, "Ears Partly Visible": 0.46}.get(labels["ears_visibility"])
    if ear_cover is not None:  # hair falling over the ears
        for side in (-1, 1):
            x0 = 0.5 + side * (fw - 0.02)
            x1 = 0.5 + side * (fw + 0.075)
            d.rectangle([min(x0, x1) * s, 0.25 * s, max(x0, x1) * s, ear_cover * s], fill=hair)
    for side in (-1, 1):  # eyes: white, iris coloured by eye_color
        _ellipse(d, s, 0.5 + side * 0.11, 0.41, 0.065, 0.04, fill=240)
        _ellipse(d, s, 0.5 + side * 0.11, 0.41, 0.035, 0.035, fill=IRIS_LEVEL[labels["eye_color"]])
    d.polygon([(0.5 * s, 0.46 * s), (0.46 * s, 0.56 * s), (0.54 * s, 0.56 * s)], fill=skin - 55)  # nose
    _ellipse(d, s, 0.5, 0.66, 0.09, 0.025, fill=60)  # mouth
    _draw_glasses(img, labels["glasses_kind"], s)
    _draw_mask(img, labels, s, fw)
    if labels["chin_visibility"] == "Chin Fully Occluded" and labels["wearing_face_mask"] != "Wears Face Mask":
        ImageDraw.Draw(img).rectangle([0.15 * s, 0.73 * s, 0.85 * s, s], fill=110)  # high collar
    # the subject sits where they sit: shifts the head so different people do not hash alike
    ox, oy = subject["offset"]
    img = img.transform(img.size, Image.AFFINE, (1, 0, -ox * s, 0, 1, -oy * s), resample=Image.BILINEAR,
                        fillcolor=70 if in_car else 205)
    if in_car:  # steering-wheel rim at the bottom
        ImageDraw.Draw(img).arc([0.05 * s, 0.84 * s, 0.95 * s, 1.6 * s], 180, 360, fill=20, width=int(0.06 * s))
    return img


def _draw_glasses(img: Image.Image, kind: str, s: int) -> None:
    if kind == "Glasses Kind None":
        return
    lenses = Image.new("L", img.size, 0)
    ld = ImageDraw.Draw(lenses)
    for side in (-1, 1):
        _ellipse(ld, s, 0.5 + side * 0.11, 0.41, 0.085, 0.065, fill=255)
    tint = {"Glasses Kind Semi-Transparent": (90, 0.55), "Glasses Kind Blocking": (10, 1.0)}.get(kind)
    if tint is not None:  # lens fill blended over the eyes (alpha 1 hides the iris)
        level, alpha = tint
        img.paste(level, mask=lenses.point(lambda v: int(v * alpha)))
    d = ImageDraw.Draw(img)
    w = max(1, round(0.012 * s))
    for side in (-1, 1):
        _ellipse(d, s, 0.5 + side * 0.11, 0.41, 0.085, 0.065, outline=20, width=w)
    d.line([(0.475 * s, 0.4 * s), (0.525 * s, 0.4 * s)], fill=20, width=w)


def _draw_mask(img: Image.Image, labels: dict[str, str], s: int, fw: float) -> None:
    kind = labels["face_mask_kind"]
    if kind == "Face Mask Kind None":
        return
    top = 0.47 if labels["nose_visibility"] == "Nose Fully Occluded" else 0.595
    shape = Image.new("L", img.size, 0)
    pts = [(0.5 - fw - 0.01, top), (0.5 + fw + 0.01, top), (0.5 + fw - 0.02, 0.72),
           (0.5 + 0.1, 0.83), (0.5 - 0.1, 0.83), (0.5 - fw + 0.02, 0.72)]
    ImageDraw.Draw(shape).polygon([(x * s, y * s) for x, y in pts], fill=255)
    if kind in MASK_LEVEL:
        img.paste(MASK_LEVEL[kind], mask=shape)
    else:  # "RGB": a textured (checkered) mask
        cell = max(2, s // 16)
        yy, xx = np.mgrid[0:s, 0:s] // cell
        img.paste(Image.fromarray(np.where((yy + xx) % 2 == 0, 70, 200).astype(np.uint8)), mask=shape)
    d = ImageDraw.Draw(img)
    for side in (-1, 1):  # straps to the ears
        d.line([((0.5 + side * fw) * s, (top + 0.03) * s), ((0.5 + side * (fw + 0.03)) * s, 0.45 * s)],
               fill=MASK_LEVEL.get(kind, 130), width=max(1, round(0.015 * s)))


def render_frame(base: Image.Image, rng: np.random.Generator, size: int, hand_probability: float) -> np.ndarray:
    """One frame: the base picture jittered, relit, noised and sometimes partly covered by a hand."""
    s = base.size[0]
    angle, scale = np.deg2rad(rng.uniform(-4, 4)), rng.uniform(0.96, 1.04)
    dx, dy = rng.uniform(-0.04, 0.04, size=2) * s
    c, si = np.cos(angle) / scale, np.sin(angle) / scale
    cx = cy = s / 2  # rotate/scale about the centre, then shift
    coeffs = (c, si, cx - c * cx - si * cy + dx, -si, c, cy + si * cx - c * cy + dy)
    img = base.transform(base.size, Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=base.getpixel((0, 0)))
    if rng.random() < hand_probability:
        hx, hy = rng.uniform(0.25, 0.75, size=2)
        _ellipse(ImageDraw.Draw(img), s, hx, hy, 0.12, 0.17, fill=int(rng.integers(150, 190)))
    arr = np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32)
    arr = arr * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10) + rng.normal(0, 5, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


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
