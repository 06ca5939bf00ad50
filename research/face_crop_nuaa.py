"""nuaa with every frame cropped to its face: the derived benchmark of the face-crop experiment
(docs/results.md, "Known limits"). Not part of the product: it asks whether a larger face makes wearing_glasses and
photo_motion learnable, and S4L's lead larger, before anyone builds a face detector into serving.

OpenCV's bundled Haar frontal-face cascade looks at every frame; its largest face counts when its width is within
0.6-1.6x the recording's median (drops false hits). Each frame is cropped to a square centred on its face, of one
side per recording: twice the median face width (half a face width of margin on each side, so glasses, ears and
the photo's edge stay in view, and a rotated or twisted photo still changes size). A frame without a face takes
the centre of the nearest frame with one; a recording without any keeps its whole frames. Black fills what lies
outside the frame. The export, label config, tasks and truth.csv are copied unchanged (frame URLs stay valid under
the new data root); `crops.json` records every crop box and the OpenCV version. In a throwaway virtualenv:

    python -m venv CV_VENV && CV_VENV/bin/pip install "opencv-python-headless<5" numpy pillow
    CV_VENV/bin/python research/face_crop_nuaa.py --out CROPS   # then research.experiments --data-root CROPS
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH_RANGE, SIDE = (0.6, 1.6), 2.0  # plausible face widths (x the median); crop side (x the median face width)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "nuaa"  # ../shared beside the repo
COPIED = ("export.json", "label_config.xml", "tasks.json", "truth.csv")


def haar_cascade():
    """OpenCV's bundled frontal-face detector (4.x: OpenCV 5 moved the Haar cascades out of the main package);
    imported here so crop_boxes is testable without OpenCV. research/face_size_nuaa.py uses it too."""
    import cv2

    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def largest_face(cascade, grey: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest detected face (x, y, w, h) of a greyscale frame, or None."""
    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    return tuple(int(v) for v in max(faces, key=lambda b: b[2])) if len(faces) else None


def crop_boxes(faces: list[tuple[int, int, int, int] | None]) -> list[tuple[int, int, int, int]] | None:
    """One (left, top, right, bottom) square per frame of a recording, or None when no frame has a face."""
    widths = [f[2] for f in faces if f]
    if not widths:
        return None
    median = float(np.median(widths))
    found = {i: f for i, f in enumerate(faces) if f}
    plausible = {i: f for i, f in found.items() if WIDTH_RANGE[0] * median <= f[2] <= WIDTH_RANGE[1] * median}
    # two hits of very different widths leave none near their median: keep them all then
    centres = {i: (x + w / 2, y + h / 2) for i, (x, y, w, h) in (plausible or found).items()}
    half = SIDE * median / 2
    boxes = []
    for i in range(len(faces)):
        cx, cy = centres[min(centres, key=lambda j: abs(j - i))]
        boxes.append((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return boxes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help=f"nuaa benchmark folder (default {DATA})")
    ap.add_argument("--out", type=Path, required=True, help="new data root; the benchmark goes to OUT/nuaa")
    a = ap.parse_args()
    import cv2

    target = a.out / "nuaa"
    target.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy2(a.data / name, target / name)
    cascade = haar_cascade()
    crops, sides, frame_side = {}, [], 0
    for folder in sorted(p for p in (a.data / "frames").iterdir() if p.is_dir()):
        frames = sorted(folder.glob("*.jpg"))
        boxes = crop_boxes([largest_face(cascade, cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in frames])
        crops[folder.name] = boxes
        (target / "frames" / folder.name).mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(frames):
            with Image.open(f) as img:
                frame_side = max(img.size)
                (img.crop(boxes[k]) if boxes else img.copy()).save(target / "frames" / folder.name / f.name,
                                                                   quality=95)
        if boxes:
            sides.append(boxes[0][2] - boxes[0][0])
    (target / "crops.json").write_text(json.dumps({"opencv": cv2.__version__, "crops": crops}), encoding="utf-8")
    print(f"{len(crops)} recordings, {len(crops) - len(sides)} without a face; crop side median "
          f"{np.median(sides):.0f} px (10-90 %: {np.percentile(sides, 10):.0f}-{np.percentile(sides, 90):.0f}) "
          f"of a {frame_side} px frame -> {target}")


if __name__ == "__main__":
    main()
