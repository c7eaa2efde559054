"""prepare / load_split on the fixtures: ImageFolder + VOC, aliases, dedup, grouped split, errors."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("imagehash")
pytest.importorskip("sklearn")

from maskwatch import LABELS  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402
from train.data import (MANIFEST_COLUMNS, canonical_label, fit_box_inside, load_imagefolder,  # noqa: E402
                        load_manifest, load_split, prepare)

pytestmark = pytest.mark.train
FIXTURES = Path(__file__).parent / "fixtures" / "train"


def make_sources(tmp_path: Path) -> tuple[Path, Path]:
    crops = tmp_path / "crops"
    shutil.copytree(FIXTURES / "crops", crops)
    voc = tmp_path / "voc"
    shutil.copytree(FIXTURES / "voc", voc)
    return crops, voc


def test_label_aliases():
    assert canonical_label("mask_weared_incorrect") == "mask_worn_incorrectly"
    assert canonical_label("With Mask") == "with_mask"
    assert canonical_label("without-mask") == "without_mask"
    assert canonical_label("incorrect_mask") == "mask_worn_incorrectly"
    assert canonical_label("dog") is None


def test_prepare_imagefolder_and_voc(tmp_path):
    crops, voc = make_sources(tmp_path)
    first = next((crops / "with_mask").iterdir())
    shutil.copy(first, crops / "with_mask" / "exact_copy.jpg")       # an exact duplicate
    (crops / "without_mask" / "broken.jpg").write_bytes(b"not a jpeg")  # a corrupt image
    (crops / "cats").mkdir()                                         # an unknown class folder
    shutil.copy(first, crops / "cats" / "cat.jpg")
    out = tmp_path / "data"
    report = prepare([crops, voc], out, size=32, redetect="none", val=0.2, test=0.2, progress=False)

    assert report.exact_duplicates == 1
    assert len(report.corrupt) == 1 and report.corrupt[0].endswith("broken.jpg")
    assert report.unknown_labels == {"cats": 1}
    rows = load_manifest(out / "manifest.csv")
    with open(out / "manifest.csv") as fh:
        assert next(csv.reader(fh)) == MANIFEST_COLUMNS
    assert len(rows) == report.faces == 12 + 5  # 12 crops + 5 VOC faces; the copy dropped
    assert {r["label"] for r in rows} == set(LABELS)
    assert all(r["split"] in ("train", "val", "test") for r in rows)
    scene = [r for r in rows if r["source"] == "voc"]
    assert len(scene) == 5
    assert len({r["split"] for r in scene}) == 1, "a scene's faces must stay in one split"
    assert len({r["group"] for r in scene}) == 1
    assert {r["box_from"] for r in scene} == {"annotation"}
    w = {round(r["face_w"]) for r in scene}
    assert w == {42, 33, 19, 44}  # box widths in source pixels
    # ImageFolder crops for evaluate --data
    for r_split in {r["split"] for r in rows}:
        x, y, paths = load_imagefolder(out / r_split)
        assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8 and len(x) == len(y) == len(paths)


def test_load_split_recuts_at_any_size(tmp_path):
    crops, voc = make_sources(tmp_path)
    out = tmp_path / "data"
    prepare([crops, voc], out, size=32, redetect="none", val=0.0, test=0.0, progress=False)
    x, y = load_split(out, "train", size=40, margin=0.2, cache_dir=out / "cache")
    assert x.shape == (17, 40, 40, 3) and x.dtype == np.uint8
    assert sorted(np.bincount(y, minlength=3)) == sorted([5, 6, 6])
    x2, y2 = load_split(out, "train", size=40, margin=0.2, cache_dir=out / "cache")  # from the cache
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    xv, yv = load_split(out, "val", size=40)
    assert xv.shape == (0, 40, 40, 3)


def test_fit_box_inside_keeps_crop_in_image():
    x1, y1, x2, y2 = fit_box_inside((10, 10, 90, 90), 100, 100, 0.2)
    side = (x2 - x1) * 1.4
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert side <= 100 + 1e-6 and cx - side / 2 >= -1e-6 and cx + side / 2 <= 100 + 1e-6 and cy == 50


@pytest.mark.parametrize("case", ["empty", "unknown_only", "missing"])
def test_prepare_bad_inputs_give_one_clear_error(tmp_path, case):
    src = tmp_path / "src"
    if case == "empty":
        src.mkdir()
    elif case == "unknown_only":
        (src / "dogs").mkdir(parents=True)
        shutil.copy(next((FIXTURES / "crops" / "with_mask").iterdir()), src / "dogs" / "a.jpg")
    with pytest.raises(MaskwatchError) as e:
        prepare([src], tmp_path / "out", size=32, redetect="none", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert ("not found" in msg) if case == "missing" else ("no labelled faces" in msg)
    if case == "unknown_only":
        assert "dogs" in msg


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(MaskwatchError, match="manifest not found"):
        load_manifest(tmp_path)


def test_prepare_redetects_faces_in_crops_with_the_app_detector(tmp_path):
    """Pre-cropped faces are re-framed by the app's detector; crops it cannot find are dropped."""
    pytest.importorskip("mediapipe")
    crops, _ = make_sources(tmp_path)
    out = tmp_path / "data"
    report = prepare([crops], out, size=32, redetect="crops", val=0.0, test=0.0, progress=False)
    rows = load_manifest(out)
    assert report.images == 12 and report.faces + report.no_face == 12
    assert report.faces >= 6, "the detector should find most of these faces"
    assert {r["box_from"] for r in rows} == {"detector"}
    for r in rows:  # a detected face box is smaller than the crop it came from
        import cv2

        h, w = cv2.imread(r["path"]).shape[:2]
        assert r["face_w"] < w and r["x1"] >= 0 and r["x2"] <= w
    kept = prepare([crops], tmp_path / "data_keep", size=32, redetect="crops", val=0.0, test=0.0,
                   drop_undetected=False, progress=False)
    assert kept.faces == 12 and kept.no_face == 0
