"""research/face_crop_nuaa.py's crop boxes (OpenCV is not needed here)."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("face_crop_nuaa", Path(__file__).parents[1] / "face_crop_nuaa.py")
face_crop = importlib.util.module_from_spec(spec)
spec.loader.exec_module(face_crop)


def test_one_square_per_frame_centred_on_its_face_twice_the_median_width():
    faces = [(10, 20, 40, 40), (30, 20, 50, 50), (20, 40, 60, 60)]  # widths 40, 50, 60: median 50
    boxes = face_crop.crop_boxes(faces)
    assert boxes == [(-20, -10, 80, 90), (5, -5, 105, 95), (0, 20, 100, 120)]  # side 100 about each centre
    assert all(r - left == b - t == 100 for left, t, r, b in boxes)


def test_frames_without_a_plausible_face_take_the_nearest_plausible_centre():
    faces = [(0, 0, 40, 40), None, None, (100, 0, 40, 40), (0, 0, 200, 200)]  # the last is a false hit (5x median)
    boxes = face_crop.crop_boxes(faces)
    centres = [((left + r) / 2, (t + b) / 2) for left, t, r, b in boxes]
    assert centres == [(20, 20), (20, 20), (120, 20), (120, 20), (120, 20)]
    assert face_crop.crop_boxes([None, None]) is None  # no face at all: the caller keeps the whole frames


def test_two_hits_of_very_different_widths_keep_both_rather_than_none():
    boxes = face_crop.crop_boxes([(0, 0, 10, 10), (0, 0, 100, 100)])  # median 55: neither within 0.6-1.6x
    assert [((left + r) / 2, (t + b) / 2) for left, t, r, b in boxes] == [(5, 5), (50, 50)]
