"""train.synthesis on the real fixture photos: mask placement per position, one code path, crops, manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("scipy")

from maskwatch.crop import crop_face  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402
from train import synthesis as S  # noqa: E402
from train.data import MANIFEST_COLUMNS, crop_rows, load_manifest  # noqa: E402

pytestmark = pytest.mark.train
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DONOR = FIXTURES / "people" / "with_mask.jpg"      # one real masked face (chandrikadeb7, MIT)
TARGET = FIXTURES / "people" / "without_mask.jpg"  # one real unmasked face
SCENE = FIXTURES / "faces_scene_maksssksksss21.jpg"  # four masked faces and one unmasked, 39-69 px


@pytest.fixture(scope="module")
def keypoints(tmp_path_factory):
    """RetinaFace detections of the fixture photos (the app's detector, through the cache)."""
    cache = S.KeypointCache(tmp_path_factory.mktemp("kp") / "retina.json")
    out = {p: cache.get(p) for p in (DONOR, TARGET, SCENE)}
    cache.close()
    return out


def _face(dets):
    """(box, keypoints) of the largest detection."""
    d = max(dets, key=lambda d: (d[2] - d[0]) * (d[3] - d[1]))
    return tuple(d[:4]), np.asarray(d[5:15], np.float32).reshape(5, 2)


@pytest.fixture(scope="module")
def donor(keypoints):
    box, kps = _face(keypoints[DONOR])
    d, why = S.extract_donor(cv2.imread(str(DONOR)), kps, box[2] - box[0])
    assert why == "ok" and d is not None
    return d


def _alpha_at(alpha: np.ndarray, xy) -> float:
    x, y = (int(round(v)) for v in xy)
    return float(alpha[y, x])


def test_donor_mask_is_a_plausible_worn_mask(donor):
    poly = np.zeros(donor.alpha.shape, np.uint8)
    cv2.fillPoly(poly, [S._units_to_px(S.MASK_POLYGON).round().astype(np.int32)], 1)
    area = (donor.alpha > 0.5).sum() / poly.sum()
    assert 0.6 <= area <= 1.3
    assert 52 <= donor.top <= 70                      # the top edge over the nose bridge, under the eyes
    mouth = S._units_to_px([(56.0, 92.3)])[0]
    eye = S._units_to_px([S.TEMPLATE[0]])[0]
    assert _alpha_at(donor.alpha, mouth) == 1.0 and _alpha_at(donor.alpha, eye) == 0.0


def test_mask_sits_where_the_position_says(keypoints, donor):
    img = cv2.imread(str(TARGET))
    _, k = _face(keypoints[TARGET])
    eyes, nose, mouth = (k[0] + k[1]) / 2, k[2], (k[3] + k[4]) / 2
    below_nose = nose + 0.55 * (mouth - nose)   # canonical y ~83: under_nose tops 76-81, mouth_only 84-88
    chin = mouth + 0.7 * (mouth - nose)
    expected = {  # (point, covered?)
        "over_nose": [(nose, True), (mouth, True), (eyes, False)],
        "under_nose": [(nose, False), (below_nose, True), (mouth, True)],
        "mouth_only": [(nose, False), (below_nose, False), (mouth, True)],
        "chin": [(nose, False), (mouth, False), (chin, True)],
    }
    for pos, points in expected.items():
        lo, hi = S.POSITIONS[pos].top
        out, alpha = S.compose(img, k, donor, (lo + hi) / 2)
        assert out.shape == img.shape and out.dtype == np.uint8
        for point, covered in points:
            a = _alpha_at(alpha, point)
            assert (a > 0.9) if covered else (a < 0.05), (pos, point, a)
        # the mask's top edge on the nose column: above the nose tip only when worn over the nose
        col = alpha[:, int(round(nose[0]))]
        top = int(np.flatnonzero(col > 0.5)[0])
        assert (top < nose[1]) == (pos == "over_nose"), (pos, top, nose[1])
        changed = np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 0
        assert not changed[alpha == 0].any(), "pixels outside the mask's alpha must stay the target's"
    out, alpha = S.compose(img, k, donor, None)      # the control: same path, nothing drawn
    assert not alpha.any() and np.array_equal(out, img)


def test_positions_differ_only_by_a_shift_along_the_face(keypoints, donor):
    img = cv2.imread(str(TARGET))
    _, k = _face(keypoints[TARGET])
    _, a1 = S.compose(img, k, donor, 60.0)
    _, a2 = S.compose(img, k, donor, 80.0)
    m = S.similarity_to(k)
    shift = m[:, :2] @ np.array([0.0, 20.0])         # 20 canonical units down the face axis, in pixels
    moved = cv2.warpAffine(a1, np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32), a1.shape[::-1])
    assert np.abs(moved - a2).mean() < 0.01
    assert abs(moved.sum() - a2.sum()) < 0.02 * a2.sum()


def _manifest(tmp_path: Path, keypoints, target_split="train", donor_split="train") -> Path:
    """A prepare-style manifest of the fixture photos; the scene's faces are all in the test split."""
    db, _ = _face(keypoints[DONOR])
    tb, _ = _face(keypoints[TARGET])
    rows = [(DONOR, "people", "with_mask", db, donor_split, "7"), (TARGET, "people", "without_mask", tb, target_split, "8")]
    for d in keypoints[SCENE]:  # scene faces: big enough, but in the test split
        rows.append((SCENE, "scenes", "with_mask", tuple(d[:4]), "test", "9"))
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for path, source, label, (x1, y1, x2, y2), split, group in rows:
            rec = {"path": str(path), "source": source, "label": label, "face_w": x2 - x1, "face_h": y2 - y1,
                   "split": split, "group": group, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "box_from": "detector",
                   "source_label": label}
            w.writerow([rec.get(c, "") for c in MANIFEST_COLUMNS])
    return data


def test_synthesize_writes_tagged_train_faces_through_compose(tmp_path, keypoints, monkeypatch):
    calls = []
    real_compose = S.compose

    def spy(img, kps, donor, top, *a, **kw):
        calls.append((donor.path, donor.flipped, top))
        return real_compose(img, kps, donor, top, *a, **kw)

    monkeypatch.setattr(S.generator, "compose", spy)   # where synthesize looks it up
    data = _manifest(tmp_path, keypoints)
    out = tmp_path / "synth"
    rep = S.synthesize(data, out, per_target=4, seed=3, control=1.0, donor_source="any",
                       cache=tmp_path / "kp.json", progress=False)
    rows = load_manifest(out / "manifest.csv")
    assert rep.faces == len(rows) == len(calls) == 5     # two pairs and the control, each one compose call
    with open(out / "manifest.csv") as fh:
        header = next(csv.reader(fh))
    assert header == MANIFEST_COLUMNS + S.EXTRA_COLUMNS
    for r in rows:
        assert (r["generated"], r["source"], r["split"], r["group"]) == ("1", S.SYNTH_SOURCE, "train", "8")
        assert r["label"] == S.POSITIONS[r["synth_position"]].label
        assert r["target"].startswith(str(TARGET)) and r["donor"].startswith(str(DONOR))  # never the test scene
        assert (r["target_source"], r["donor_source"]) == ("people", "people")
        assert Path(r["path"]).parent.name == r["label"] and Path(r["path"]).suffix == ".jpg"
    assert sum(r["synth_position"] == "over_nose" for r in rows) == 2
    assert sum(r["label"] == "mask_worn_incorrectly" for r in rows) == 2
    assert [r["synth_position"] for r in rows].count("none") == 1
    # the faces of one donor pair differ by the mask's height only
    assert len({c[:2] for c in calls[:2]}) == 1 and calls[0][2] != calls[1][2]
    # crops: the app's crop of the target box at native size, and re-cut by training at any size
    tb, _ = _face(keypoints[TARGET])
    side = S.crop_side(tb, 0.2)
    for r in rows:
        img = cv2.imread(r["path"])
        assert img.shape == (side, side, 3)
    x = crop_rows(rows, 64, 0.2)
    assert x.shape == (len(rows), 64, 64, 3)
    control = next(i for i, r in enumerate(rows) if r["synth_position"] == "none")
    plain = crop_face(cv2.imread(str(TARGET)), tb, 64, 0.2)
    assert np.abs(x[control].astype(int) - plain.astype(int)).mean() < 3.0   # only JPEG and re-cropping
    combined = load_manifest(out / "combined")
    assert len(combined) == len(load_manifest(data)) + len(rows)
    assert {r["generated"] for r in combined} == {"0", "1"}


def test_val_and_test_faces_never_generate(tmp_path, keypoints):
    data = _manifest(tmp_path, keypoints, target_split="val")
    with pytest.raises(MaskwatchError, match="no faces generated"):
        S.synthesize(data, tmp_path / "o1", cache=tmp_path / "kp.json", progress=False)
    (tmp_path / "b").mkdir()
    data2 = _manifest(tmp_path / "b", keypoints, donor_split="test")
    with pytest.raises(MaskwatchError, match="no usable mask donors"):
        S.synthesize(data2, tmp_path / "o2", cache=tmp_path / "kp.json", progress=False)


def test_keypoint_cache_is_reused(tmp_path, keypoints, monkeypatch):
    data = _manifest(tmp_path, keypoints)
    cache = tmp_path / "kp.json"
    S.synthesize(data, tmp_path / "o1", per_target=1, cache=cache, progress=False)
    assert cache.is_file()

    def no_detector(self):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(S.KeypointCache, "_detector", no_detector)
    rep = S.synthesize(data, tmp_path / "o2", per_target=1, cache=cache, progress=False)
    assert rep.detected_images == 0 and rep.faces >= 1


def test_cli_synthesize(tmp_path, keypoints, capsys):
    from train.cli import main

    data = _manifest(tmp_path, keypoints)
    out = tmp_path / "synth"
    rc = main(["synthesize", "--data", str(data), "--out", str(out), "--per-target", "2", "--seed", "1",
               "--cache", str(tmp_path / "kp.json"), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "generated 2 faces" in printed and (out / "manifest.csv").is_file()
    rc = main(["synthesize", "--data", str(FIXTURES / "train" / "voc"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("maskwatch-train: error: --data") and "prepare" in err[0]
    rc = main(["synthesize", "--data", str(data), "--out", str(tmp_path / "y"), "--per-target", "0"])
    assert rc == 2 and "--per-target" in capsys.readouterr().err


def test_generated_faces_cannot_reach_validation_or_test(tmp_path, keypoints):
    from train.data import prepare

    data = _manifest(tmp_path, keypoints)
    out = tmp_path / "synth"
    S.synthesize(data, out, per_target=2, cache=tmp_path / "kp.json", progress=False)
    # a manifest that puts a generated face in val (hand-edited, or merged wrongly) is refused
    rows = list(csv.DictReader(open(out / "combined" / "manifest.csv")))
    rows[-1]["split"] = "val"
    with open(tmp_path / "leak.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(MaskwatchError, match=r"generated faces \(generated=1\) in the val split \(1\)"):
        load_manifest(tmp_path / "leak.csv")
    # and the generated crops cannot be prepared (split) as if they were a real source
    with pytest.raises(MaskwatchError, match="holds generated faces"):
        prepare([out], tmp_path / "prep", redetect="none", progress=False)


def test_rerun_replaces_only_its_own_files(tmp_path, keypoints):
    data = _manifest(tmp_path, keypoints)
    out = tmp_path / "synth"
    S.synthesize(data, out, per_target=4, control=0.0, cache=tmp_path / "kp.json", progress=False)
    keep = out / "notes.txt"
    keep.write_text("mine")
    rep = S.synthesize(data, out, per_target=1, control=0.0, seed=5, cache=tmp_path / "kp.json", progress=False)
    jpgs = sorted(str(p.resolve()) for p in out.rglob("*.jpg"))
    assert jpgs == sorted(r["path"] for r in load_manifest(out / "manifest.csv")) and len(jpgs) == rep.faces == 1
    assert keep.read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    with pytest.raises(MaskwatchError, match="not empty"):
        S.synthesize(data, other, cache=tmp_path / "kp.json", progress=False)
