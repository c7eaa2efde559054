"""``maskwatch-train finetune`` end to end on a tiny model and the fixture crops, and its one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train" / "crops"


def _site_folder(root: Path, per_class: int = 6) -> Path:
    """An ImageFolder with ``per_class`` crops per class, made from the 12 fixture crops (and their mirrors)."""
    for src in sorted(FIXTURES.iterdir()):
        dst = root / src.name
        dst.mkdir(parents=True)
        files = sorted(src.glob("*.jpg"))
        for i in range(per_class):
            img = cv2.imread(str(files[i % len(files)]))
            if i >= len(files):
                img = cv2.flip(img, 1)
            cv2.imwrite(str(dst / f"{i}.jpg"), img)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 32 px lowres_cnn (random weights) saved as .keras, with metadata JSON next to it like the shipped one."""
    from train.models import build_model

    d = tmp_path_factory.mktemp("model")
    m = build_model("lowres_cnn", 32, weights="none")
    path = d / "tiny.keras"
    m.save(path)
    (d / "tiny.json").write_text(json.dumps({"labels": ["with_mask", "without_mask", "mask_worn_incorrectly"],
                                             "version": "0.9.1", "crop_margin": 0.2, "backbone": "lowres_cnn",
                                             "temperature": 1.0, "calibration": {"applied": False}}))
    return path


def _replay_manifest(root: Path) -> Path:
    """A prepared-pool manifest over the fixture crops (rows without boxes: the whole image is the crop)."""
    from train.data import write_manifest

    rows = []
    for i, f in enumerate(sorted(FIXTURES.rglob("*.jpg"))):
        from train.data import canonical_label

        rows.append({"path": str(f), "source": "fixtures", "label": canonical_label(f.parent.name), "face_w": None,
                     "face_h": None, "split": "train" if i % 4 else "val", "group": str(i), "x1": None, "y1": None,
                     "x2": None, "y2": None, "box_from": "crop", "source_label": f.parent.name})
    return write_manifest(rows, root / "pool" / "manifest.csv").parent


def test_finetune_end_to_end(tmp_path, tiny_model, capsys):
    from maskwatch.classification import MaskClassifier
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    (site / "not_a_face").mkdir()
    shutil.copy(next(FIXTURES.rglob("*.jpg")), site / "not_a_face" / "x.jpg")
    replay = _replay_manifest(tmp_path)
    run = tmp_path / "run"
    rc = main(["finetune", "--data", str(site), "--out", str(run), "--model", str(tiny_model), "--replay", str(replay),
               "--replay-size", "9", "--epochs", "2", "--holdout", "0.34", "--batch-size", "8",
               "--calib-size", "8", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    tfl = run / "mask_classifier.tflite"
    assert f"maskwatch --model {tfl}" in out
    assert "held-out site crops (6)" in out and "not_a_face 1" in out
    report = json.loads((run / "finetune.json").read_text())
    assert report["site_crops"] == {"with_mask": 6, "without_mask": 6, "mask_worn_incorrectly": 6}
    assert report["held_out"] == 6 and report["site_train"] == 12 and report["replay_faces"] == 9
    assert set(report["before"]["recall"]) == set(report["after"]["recall"]) == {"with_mask", "without_mask",
                                                                                  "mask_worn_incorrectly"}
    meta = json.loads(tfl.with_suffix(".json").read_text())
    assert meta["version"].startswith("0.9.1+ft.") and meta["input_size"] == [32, 32]
    assert meta["temperature"] == 1.0  # the base model's metadata does not apply one
    assert meta["base_model"]["version"] == "0.9.1" and meta["finetune"]["held_out"] == 6
    # the app loads it, and the held-out crops' split in the run's manifest is the site's
    clf = MaskClassifier(tfl)
    assert clf.version == meta["version"]
    probs = clf.classify(np.zeros((2, 32, 32, 3), np.uint8))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-3)
    with open(run / "data" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["source"] == "site" and r["split"] == "test" for r in rows) == 6


def test_unknown_folder_is_one_line_error(tmp_path, tiny_model, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    (site / "cats").mkdir()
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1
    assert "unknown class folders" in err and "cats" in err and "not_a_face" in err
    assert not (tmp_path / "run").exists()


def test_too_few_crops_is_one_line_error(tmp_path, tiny_model, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site", per_class=2)
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "too few labelled crops" in err
    # the message must not promise that --replay helps: with a pool it fails the same way
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model),
               "--replay", str(_replay_manifest(tmp_path))])
    err2 = capsys.readouterr().err.strip()
    assert rc != 0 and "too few labelled crops" in err2 and "with or without --replay" in err2
    assert "add --replay" not in err + err2


@pytest.mark.parametrize("args, words", [
    (["--model", "models/mask_classifier.tflite"], "float .keras model"),
    (["--holdout", "1.5"], "--holdout must be in [0, 1)"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--site-share", "1"], "--site-share must be in (0, 1)"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--calib-size", "0"], "--calib-size must be at least 1"),
    (["--replay-size=-1"], "--replay-size must be at least 0"),
    (["--top-fraction", "0"], "--top-fraction must be in (0, 1]"),
    (["--top-fraction", "1.5"], "--top-fraction must be in (0, 1]"),
    (["--lr-head", "0"], "--lr-head must be above 0"),
    (["--lr-top=-1e-4"], "--lr-top must be above 0"),
    (["--lr-top", "nan"], "--lr-top must be above 0"),
])
def test_bad_options_are_one_line_errors(tmp_path, tiny_model, capsys, args, words):
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    argv = ["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model)] + args
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "run").exists()  # checked before the run folder is made


def test_out_naming_a_file_is_one_line_error(tmp_path, tiny_model, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    (tmp_path / "run").write_text("not a folder")
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "--out" in err and "is a file" in err
    assert (tmp_path / "run").read_text() == "not a folder"


def test_missing_replay_leaves_no_run_folder(tmp_path, tiny_model, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model),
               "--replay", str(tmp_path / "no_pool")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "--replay" in err and "no_pool" in err
    assert not (tmp_path / "run").exists()


def test_cli_turns_oserror_into_one_line(monkeypatch, capsys):
    import train.finetune
    from train.cli import main

    def boom(cfg, **kwargs):
        raise PermissionError(13, "Permission denied", "/runs/x/config.json")

    monkeypatch.setattr(train.finetune, "finetune", boom)
    rc = main(["finetune", "--data", "d", "--out", "o"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err == "maskwatch-train: error: cannot use /runs/x/config.json: Permission denied"


def test_missing_data_folder(tmp_path, capsys):
    from train.cli import main

    rc = main(["finetune", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert rc != 0 and "folder not found" in capsys.readouterr().err


def test_few_crops_in_one_class_warn_and_all_train(tmp_path):
    from train.finetune import check_counts, holdout_split, read_site

    site = _site_folder(tmp_path / "site")
    for f in sorted((site / "mask_weared_incorrect").glob("*.jpg"))[2:]:
        f.unlink()
    crops, ignored, _ = read_site(site)
    labels = [c.label for c in crops]
    warnings = check_counts(__import__("collections").Counter(labels))
    assert len(warnings) == 1 and "only 2 mask_worn_incorrectly" in warnings[0]
    held = holdout_split(labels, 0.5, seed=0)
    assert not any(h for h, lab in zip(held, labels) if lab == "mask_worn_incorrectly")
    assert sum(held) == 6 and list(held) == list(holdout_split(labels, 0.5, seed=0))


def test_collected_crops_are_recut_to_the_served_box(tmp_path):
    """A collect folder: labelled/<label>/ files with context, collected.csv saying where the face is."""
    from train.data import crop_rows
    from train.finetune import _site_rows, read_site

    collect = tmp_path / "collect"
    (collect / "labelled" / "with_mask").mkdir(parents=True)
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255  # the face: a white square in the middle of black context
    cv2.imwrite(str(collect / "labelled" / "with_mask" / "a.png"), img)
    with open(collect / "collected.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "face_x1", "face_y1", "face_x2", "face_y2"])
        w.writerow(["crops/a.png", 40, 40, 60, 60])
    crops, _, notes = read_site(collect)
    assert crops[0].box == (40.0, 40.0, 60.0, 60.0) and "re-cut" in notes[0]
    x = crop_rows(_site_rows(crops, np.array([False])), 32, 0.2)
    # cut with the served margin (0.2): the white face fills the middle 5/7 of the crop
    assert x[0, 16, 16].min() == 255 and x[0, 1, 1].max() == 0


def test_collect_review_finetune_loop(tmp_path, tiny_model, capsys):
    """The loop's folder shapes end to end: a collect folder (collected.csv with the sink's columns),
    labelled by the review tab's ReviewSession (keys 1/2/3/X), fine-tuned from the collect folder."""
    from maskwatch.gui.review import ReviewSession
    from maskwatch.sinks.collect import COLLECT_COLUMNS
    from train.cli import main

    collect = tmp_path / "collect"
    collect.mkdir()
    rows, truth = [], []
    for src in sorted(FIXTURES.iterdir()):
        files = sorted(src.glob("*.jpg"))
        for i in range(6):
            face = cv2.resize(cv2.imread(str(files[i % len(files)])), (40, 40))
            if i >= len(files):
                face = cv2.flip(face, 1)
            img = cv2.copyMakeBorder(face, 10, 10, 10, 10, cv2.BORDER_REPLICATE)  # context around the face
            name = f"{len(rows):06d}.png"
            cv2.imwrite(str(collect / name), img)
            row = dict.fromkeys(COLLECT_COLUMNS, "")
            row.update(file=name, face_x1=14, face_y1=14, face_x2=46, face_y2=46, top_prob=0.5 + len(rows) / 100)
            rows.append(row)
            truth.append(src.name)
    cv2.imwrite(str(collect / "000099.png"), np.zeros((60, 60, 3), np.uint8))  # a torso: "not a face"
    rows.append({**dict.fromkeys(COLLECT_COLUMNS, ""), "file": "000099.png", "face_x1": 14, "face_y1": 14,
                 "face_x2": 46, "face_y2": 46, "top_prob": 0.99})
    truth.append("not_a_face")
    with open(collect / "collected.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLLECT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    session = ReviewSession(collect)
    canonical = {"mask_weared_incorrect": "mask_worn_incorrectly"}
    by_file = {r["file"]: t for r, t in zip(rows, truth)}
    for _ in range(len(rows)):
        crop = next(i for i, c in enumerate(session.crops) if c.decision is None)
        label = by_file[session.crops[crop].file]
        session.decide(crop, canonical.get(label, label))
    assert (collect / "labelled" / "not_a_face" / "000099.png").is_file()
    run = tmp_path / "run"
    rc = main(["finetune", "--data", str(collect), "--out", str(run), "--model", str(tiny_model), "--epochs", "1",
               "--batch-size", "8", "--calib-size", "4", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    report = json.loads((run / "finetune.json").read_text())
    assert report["site_crops"] == {"with_mask": 6, "without_mask": 6, "mask_worn_incorrectly": 6}
    assert report["ignored_folders"] == {"not_a_face": 1}
    assert "18 collected crops re-cut to their served box" in out


def _collect_rows(path: Path, rows: list[dict]) -> None:
    from maskwatch.sinks.collect import COLLECT_COLUMNS

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLLECT_COLUMNS)
        w.writeheader()
        w.writerows({**dict.fromkeys(COLLECT_COLUMNS, ""), **r} for r in rows)


def test_holdout_never_splits_a_track(tmp_path):
    """Several crops of one collected track (or one image of an image folder) are held out or train together."""
    from train.finetune import _site_rows, holdout_split, read_site

    collect = tmp_path / "collect"
    rows, seq = [], 0
    img = np.zeros((30, 30, 3), np.uint8)
    for li, label in enumerate(("with_mask", "without_mask", "mask_worn_incorrectly")):
        (collect / "labelled" / label).mkdir(parents=True)
        for person in range(6):
            for _ in range(3):  # three crops of each track
                cam, track, image = ("cam1", li * 10 + person, "") if person < 4 else ("imgs", -1, f"p{li}{person}.jpg")
                name = f"{seq:06d}_t{track}.png" if track >= 0 else f"{seq:06d}.png"
                cv2.imwrite(str(collect / "labelled" / label / name), img)
                rows.append({"file": name, "camera": cam, "track": track, "image": image,
                             "face_x1": 5, "face_y1": 5, "face_x2": 25, "face_y2": 25})
                seq += 1
    # the same track number from another camera is another person
    rows[0]["camera"] = "cam2"
    _collect_rows(collect / "collected.csv", rows)
    crops, _, _ = read_site(collect)
    assert len({c.group for c in crops}) == 3 * 6 + 1
    for seed in range(4):
        held = holdout_split([c.label for c in crops], 0.34, seed, [c.group for c in crops])
        sides: dict[str, set] = {}
        for c, h in zip(crops, held):
            sides.setdefault(c.group, set()).add(bool(h))
        assert all(len(s) == 1 for s in sides.values()), "a track on both sides of the hold-out"
        for label in ("with_mask", "without_mask", "mask_worn_incorrectly"):  # stratified: each class on both sides
            side = [bool(h) for c, h in zip(crops, held) if c.label == label]
            assert any(side) and not all(side)
    manifest_rows = _site_rows(crops, held)
    by_group = {}
    for r in manifest_rows:
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())


def test_rowless_collected_crop_is_cut_to_its_central_square(tmp_path):
    """A collector's crop whose row is gone is 1.5x the served square: its central 1/1.5 is cut, and counted."""
    from train.data import crop_rows
    from train.finetune import _site_rows, read_site

    collect = tmp_path / "collect"
    (collect / "labelled" / "with_mask").mkdir(parents=True)
    saved = np.zeros((60, 60, 3), np.uint8)
    saved[10:50, 10:50] = 255  # the served square: the central 40 px of the 60 px saved image
    cv2.imwrite(str(collect / "labelled" / "with_mask" / "000007_t3.png"), saved)
    cv2.imwrite(str(collect / "labelled" / "with_mask" / "face.png"), saved)  # not the collector's name: whole
    _collect_rows(collect / "collected.csv", [{"file": "000001_t1.png", "face_x1": 5, "face_y1": 5,
                                               "face_x2": 25, "face_y2": 25}])
    crops, _, notes = read_site(collect)
    by_name = {Path(c.path).name: c for c in crops}
    assert by_name["000007_t3.png"].box is None and by_name["000007_t3.png"].served_fraction == pytest.approx(1 / 1.5)
    assert by_name["face.png"].served_fraction == 1.0
    assert any(n.startswith("warning: 1 collected crops have no collected.csv row") for n in notes)
    rows = _site_rows(crops, np.zeros(len(crops), bool), margin=0.2)
    x = crop_rows(rows, 32, 0.2)
    i = [Path(r["path"]).name for r in rows].index("000007_t3.png")
    j = 1 - i
    assert x[i].min() == 255                          # only the served square: all white
    assert x[j][0, 0].max() == 0                      # taken whole: the black context is in it
    assert rows[i]["box_from"] == "collected_central" and rows[j]["box_from"] == "crop"


def test_rows_matched_by_relative_path_then_base_name(tmp_path):
    """collected.csv rows a/x.png and b/x.png: the review tab's copy a__x.png gets a's box, not b's;
    a bare x.png (ambiguous base name) gets no row; y.png (unique base name) is matched, and the note says how."""
    from train.finetune import read_site

    collect = tmp_path / "collect"
    lab = collect / "labelled" / "with_mask"
    lab.mkdir(parents=True)
    for name in ("a__x.png", "x.png", "y.png"):
        cv2.imwrite(str(lab / name), np.zeros((40, 40, 3), np.uint8))
    _collect_rows(collect / "collected.csv", [
        {"file": "b/x.png", "face_x1": 1, "face_y1": 1, "face_x2": 9, "face_y2": 9},
        {"file": "a/x.png", "face_x1": 10, "face_y1": 10, "face_x2": 30, "face_y2": 30},
        {"file": "c/y.png", "face_x1": 2, "face_y1": 2, "face_x2": 20, "face_y2": 20},
    ])
    crops, _, notes = read_site(collect)
    boxes = {Path(c.path).name: c.box for c in crops}
    assert boxes == {"a__x.png": (10.0, 10.0, 30.0, 30.0), "x.png": None, "y.png": (2.0, 2.0, 20.0, 20.0)}
    assert "1 matched by path relative to the collect folder, 1 by base name only" in notes[0]


# --------------------------------------------------------------------------- issue 18: defaults, one class, progress


def test_default_model_resolves_from_any_folder(tmp_path, monkeypatch):
    """--model's default is the shipped float model found through maskwatch.paths, not a path relative to the cwd."""
    from maskwatch.paths import models_dir
    from train.cli import build_parser
    from train.finetune import FinetuneConfig

    monkeypatch.delenv("MASKWATCH_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    default = FinetuneConfig(data="d", out="o").model
    assert Path(default).is_absolute() and Path(default).is_file()
    assert Path(default) == (models_dir() / "mask_classifier.keras").resolve()
    args = build_parser().parse_args(["finetune", "--data", "d", "--out", "o"])
    assert args.model == default
    monkeypatch.setenv("MASKWATCH_MODELS", str(tmp_path / "mine"))
    assert FinetuneConfig(data="d", out="o").model == str((tmp_path / "mine" / "mask_classifier.keras").resolve())


def test_a_missing_model_is_one_line_error(tmp_path, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site")
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tmp_path / "no.keras")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "--model: no float model at" in err and "no.keras" in err
    assert not (tmp_path / "run").exists()


def _one_track_folder(root: Path, label: str = "with_mask", n: int = 15) -> Path:
    """``n`` collector-named crops of one track (``000001_t7.png`` ...): one person, so nothing can be held out."""
    files = sorted((FIXTURES / "with_mask").glob("*.jpg"))
    dst = root / "labelled" / label
    dst.mkdir(parents=True)
    for i in range(n):
        img = cv2.imread(str(files[i % len(files)]))
        img = cv2.copyMakeBorder(img, 8, 8, 8, 8, cv2.BORDER_REPLICATE)
        cv2.imwrite(str(dst / f"{i + 1:06d}_t7.png"), cv2.flip(img, 1) if i % 2 else img)
    return root


def test_single_class_is_refused_without_replay_in_one_line(tmp_path, tiny_model, capsys):
    from train.cli import main

    site = _site_folder(tmp_path / "site", per_class=15)
    for name in ("without_mask", "mask_weared_incorrect"):
        shutil.rmtree(site / name)
    rc = main(["finetune", "--data", str(site), "--out", str(tmp_path / "run"), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "all 15 labelled crops are with_mask" in err and "--allow-single-class" in err and "--replay" in err
    assert not (tmp_path / "run").exists()


def test_single_class_with_replay_is_a_warning(tmp_path):
    from train.finetune import FinetuneConfig, preflight

    site = _site_folder(tmp_path / "site", per_class=15)
    for name in ("without_mask", "mask_weared_incorrect"):
        shutil.rmtree(site / name)
    pre = preflight(FinetuneConfig(data=str(site), out=str(tmp_path / "run"), replay=str(_replay_manifest(tmp_path))))
    assert pre.single_class == "with_mask" and pre.held.sum() == 3  # 15 images: a fifth held out
    assert any(w.startswith("single class: all 15 labelled crops are with_mask") and "replay faces" in w
               for w in pre.warnings)
    assert pre.replay_note.startswith("replay: 900 training faces of ")


def test_nothing_held_out_is_a_warning(tmp_path):
    from train.finetune import FinetuneConfig, preflight

    site = _one_track_folder(tmp_path / "site", "with_mask", 6)
    _one_track_folder(tmp_path / "site", "without_mask", 6)  # the same track number: one group in all
    pre = preflight(FinetuneConfig(data=str(site), out=str(tmp_path / "run")))
    assert not pre.held.any() and pre.single_class is None
    assert [w for w in pre.warnings if w.startswith("nothing held out: 12 crops are too few to hold any out")]
    pre0 = preflight(FinetuneConfig(data=str(_site_folder(tmp_path / "three")), out="o", holdout=0))
    assert [w for w in pre0.warnings if w.startswith("nothing held out (--holdout 0)")]
    assert pre0.replay_note.startswith("no replay: only these site crops train")


def test_single_class_allowed_warns_and_prints_progress_lines(tmp_path, tiny_model, capsys):
    """15 crops of one person, one class, --allow-single-class: it trains, and says so in one line each:
    single class, nothing held out, no replay; --progress-lines prints @progress and @result JSON."""
    from train.cli import main

    site = _one_track_folder(tmp_path / "site")
    run = tmp_path / "run"
    rc = main(["finetune", "--data", str(site), "--out", str(run), "--model", str(tiny_model), "--epochs", "2",
               "--batch-size", "4", "--calib-size", "4", "--allow-single-class", "--progress-lines"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    plain = [ln for ln in lines if not ln.startswith("@")]
    assert [ln for ln in plain if ln.startswith("warning: single class: all 15 labelled crops are with_mask")]
    assert [ln for ln in plain if ln.startswith("warning: nothing held out: 15 crops are too few")]
    assert [ln for ln in plain if ln.startswith("no replay: ")]
    assert "no site crops held out (too few to hold any out): no before/after" in plain
    progress = [json.loads(ln.removeprefix("@progress ")) for ln in lines if ln.startswith("@progress ")]
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    stages = [p["stage"] for p in progress]
    assert stages[0] == "checking" and "training" in stages and "exporting" in stages and stages[-1] == "done"
    assert any(p["detail"] == "top epoch 1/1" for p in progress)
    [result] = [json.loads(ln.removeprefix("@result ")) for ln in lines if ln.startswith("@result ")]
    assert result["model"] == str(run / "mask_classifier.tflite") and Path(result["model"]).is_file()
    assert result["held_out"] == 0 and any(w.startswith("single class") for w in result["warnings"])
    report = json.loads((run / "finetune.json").read_text())
    assert report["site_crops"] == {"with_mask": 15, "without_mask": 0, "mask_worn_incorrectly": 0}
    assert any(w.startswith("nothing held out") for w in report["warnings"])
