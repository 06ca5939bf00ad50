"""How large are nuaa's faces, and would a face crop make them larger? A feasibility probe for the next
preprocessing step, not part of the product (docs/results.md, "Known limits").

OpenCV's bundled Haar frontal-face cascade looks at every third frame of every nuaa recording. Printed per
face_source class: the share of frames with a face, the recordings without any, and the median width of the
largest face in the 256 x 192 frame, with what that width becomes in the grid's 64 px input (whole frame
padded to a square) and in a 64 px crop of the face with a margin of half its width on each side.
OpenCV is not a project dependency; in a throwaway virtualenv:

    python -m venv CV_VENV && CV_VENV/bin/pip install "opencv-python-headless<5" numpy
    CV_VENV/bin/python research/face_size_nuaa.py [--data NUAA_FOLDER]
"""
import argparse
import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from face_crop_nuaa import DATA, haar_cascade, largest_face  # the same detector as the crops (run as a script)

INPUT, MARGIN = 64, 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help=f"nuaa benchmark folder (default {DATA})")
    a = ap.parse_args()
    cascade = haar_cascade()
    with open(a.data / "truth.csv", newline="", encoding="utf-8") as fh:
        kind = {r["recording_id"]: r["face_source"] for r in csv.DictReader(fh)}
    found, widths, side = defaultdict(list), defaultdict(list), 0
    for folder in sorted(p for p in (a.data / "frames").iterdir() if p.is_dir()):
        frames = sorted(folder.glob("*.jpg"))[::3]
        hits = 0
        for f in frames:
            grey = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            side = max(grey.shape)
            face = largest_face(cascade, grey)
            if face:
                hits += 1
                widths[kind[folder.name]].append(face[2])
        found[kind[folder.name]].append(hits / len(frames))
    for k in sorted(found):
        share, w = np.array(found[k]), float(np.median(widths[k]))
        print(f"{k}: {len(share)} recordings, frames with a face {share.mean():.0%}, recordings with none "
              f"{int((share == 0).sum())}; median face {w:.0f} px of a {side} px frame -> {w * INPUT / side:.0f} px "
              f"at {INPUT} px whole-frame input, {INPUT / (1 + 2 * MARGIN):.0f} px in a {INPUT} px face crop")


if __name__ == "__main__":
    main()
