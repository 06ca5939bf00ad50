"""Drawing of the synthetic recordings (synthetic.py): a "face" whose features encode the eleven
default labels, visible at 64 px and up:

- gender: hair length (Female: long hair down beside the neck; Male: short cap only)
- eye_color: iris brightness (Blue light, Gray mid, Green darker, Brown near black) - per subject
- car_recording: In Car = dark cabin with a steering-wheel arc at the bottom; In Lab = plain bright wall
- ears_visibility: hair blocks over none / the upper half / all of each ear
- glasses_kind: none / thin outline (Transparent) / grey see-through lenses / black lenses (Blocking)
- face_mask_kind: none / black / white / checkered ("RGB") mask over mouth and chin; a mask pulled
  up over the nose makes the nose occluded
- chin_visibility: a mask, or (without one) a high collar, covers the chin
- wearing_glasses / wearing_face_mask follow from the kinds (None <=> no).

Frames of one recording differ by jitter (shift, rotation, scale), brightness, noise and sometimes
an occluding "hand", so several frames help.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

IRIS_LEVEL = {"Blue": 215, "Gray": 150, "Green": 95, "Brown": 30}
MASK_LEVEL = {"Face Mask Kind Black": 25, "Face Mask Kind White": 240}
SUPERSAMPLE = 2  # draw at 2x and downsample: smooth edges for thin outlines


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
