"""prepare / load_split on the fixtures: ImageFolder + VOC, aliases, dedup, grouped split, errors."""

import csv
import io
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
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train"


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


# ---------------------------------------------------------------- label map, unknown names, YOLO (issue 9)

def ilc_like_voc(tmp_path: Path, extra_person: bool = False) -> Path:
    """The VOC fixture with its third class renamed as ilc2021-scenes names it (and a non-face box)."""
    root = tmp_path / "ilc-like"
    shutil.copytree(FIXTURES / "voc", root)
    xml = root / "annotations" / "maksssksksss250.xml"
    text = xml.read_text().replace("<name>mask_weared_incorrect</name>", "<name>with_incorrect_mask</name>")
    if extra_person:
        text = text.replace("</annotation>", "<object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                                             "<xmax>60</xmax><ymax>200</ymax></bndbox></object></annotation>")
    xml.write_text(text)
    return root


def test_parse_and_resolve_label_map():
    from train.data import parse_label_map, resolve_label

    m = parse_label_map(["with_incorrect_mask=mask_worn_incorrectly", "Person=ignore", "masked face=with_mask",
                         "mask_weared_incorrect=ignore"])
    assert m == {"with_incorrect_mask": "mask_worn_incorrectly", "person": "ignore", "masked_face": "with_mask",
                 "mask_weared_incorrect": "ignore"}
    assert resolve_label("With-Incorrect-Mask", m) == "mask_worn_incorrectly"   # case, - and _ alike
    assert resolve_label("masked-face", m) == "with_mask"
    assert resolve_label("mask_weared_incorrect", m) == "ignore", "the map wins over the built-in aliases"
    assert resolve_label("mask_weared_incorrect") == "mask_worn_incorrectly"
    assert resolve_label("with_incorrect_mask") is None
    assert parse_label_map({"a": "no_mask"}) == {"a": "without_mask"}   # LABEL may be an alias too
    for bad in (["with_incorrect_mask"], ["=with_mask"], ["x="], ["x=incorrect"], ["x=with_mask", "X=without_mask"]):
        with pytest.raises(MaskwatchError) as e:
            parse_label_map(bad)
        assert "--label-map" in str(e.value) and "\n" not in str(e.value)


def test_unknown_class_names_error_names_them_all_with_the_fix(tmp_path, capsys):
    from train import cli

    src = ilc_like_voc(tmp_path, extra_person=True)
    with pytest.raises(MaskwatchError) as e:
        prepare([src], tmp_path / "out", size=32, redetect="none", progress=False)
    assert str(e.value) == ("unknown class names in ilc-like: person, with_incorrect_mask (use --label-map person=LABEL "
                            "--label-map with_incorrect_mask=mask_worn_incorrectly; LABEL is one of with_mask, "
                            "without_mask, mask_worn_incorrectly or ignore)")
    assert not (tmp_path / "out").exists(), "the check runs before anything is written"
    # the exact text of the issue, from the CLI: one line, exit 2
    only_third = ilc_like_voc(tmp_path / "b")
    rc = cli.main(["prepare", str(only_third), "--out", str(tmp_path / "o"), "--redetect", "none", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == ("maskwatch-train: error: unknown class names in ilc-like: with_incorrect_mask "
                               "(use --label-map with_incorrect_mask=mask_worn_incorrectly)")
    # the fix works
    rc = cli.main(["prepare", str(src), "--out", str(tmp_path / "o"), "--size", "32", "--redetect", "none",
                   "--val", "0", "--test", "0", "--no-progress",
                   "--label-map", "with_incorrect_mask=mask_worn_incorrectly", "--label-map", "person=ignore"])
    out = capsys.readouterr().out
    assert rc == 0 and "source ilc-like (voc): mask_worn_incorrectly 2, with_mask 1, without_mask 2" in out
    assert "dropped by --label-map: person (1)" in out
    rows = load_manifest(tmp_path / "o")
    incorrect = [r for r in rows if r["label"] == "mask_worn_incorrectly"]
    assert len(rows) == 5 and len(incorrect) == 2
    assert {r["source_label"] for r in incorrect} == {"with_incorrect_mask"}
    import json

    saved = json.loads((tmp_path / "o" / "prepare.json").read_text())
    assert saved["label_map"] == {"with_incorrect_mask": "mask_worn_incorrectly", "person": "ignore"}
    assert saved["report"]["ignored_labels"] == {"person": 1}


def test_unknown_imagefolder_names_hint_at_the_label_map(tmp_path):
    src = tmp_path / "src"
    (src / "incorrect").mkdir(parents=True)
    shutil.copy(next((FIXTURES / "crops" / "with_mask").iterdir()), src / "incorrect" / "a.jpg")
    with pytest.raises(MaskwatchError, match=r"found: incorrect; or map them: --label-map incorrect=LABEL"):
        prepare([src], tmp_path / "out", size=32, redetect="none", progress=False)
    report = prepare([src], tmp_path / "out", size=32, redetect="none", val=0, test=0, progress=False,
                     label_map=["incorrect=mask_worn_incorrectly"])
    assert report.per_source == {"src": {"mask_worn_incorrectly": 1}}


def test_prepare_yolo_with_classes_txt(tmp_path):
    from train.data import source_kind

    src = FIXTURES / "yolo_txt"   # images/{train,val} + labels/{train,val}, classes.txt
    assert source_kind(src) == "yolo" and source_kind(FIXTURES / "voc") == "voc"
    out = tmp_path / "data"
    report = prepare([src], out, size=32, redetect="none", val=0.0, test=0.0, progress=False)
    rows = load_manifest(out)
    assert report.class_names_from == {"yolo_txt": str(src / "classes.txt")}
    assert report.per_source == {"yolo_txt": {"mask_worn_incorrectly": 2, "with_mask": 2, "without_mask": 2}}
    assert {r["source"] for r in rows} == {"yolo_txt"} and {r["box_from"] for r in rows} == {"annotation"}
    assert {Path(r["path"]).parent.name for r in rows} == {"train", "val"}, "both of the dataset's splits are read"
    assert {r["source_label"] for r in rows} == {"with_mask", "without_mask", "mask_weared_incorrect"}
    # boxes: the normalised lines in source pixels (320x180 image, first line of labels/train)
    import cv2

    h, w = cv2.imread(str(src / "images" / "train" / "maksssksksss717.jpg")).shape[:2]
    cls, cx, cy, bw, bh = (float(v) for v in (src / "labels" / "train" / "maksssksksss717.txt").read_text().split()[:5])
    first = next(r for r in rows if r["path"].endswith("717.jpg"))
    assert first["label"] == "mask_worn_incorrectly" and cls == 2
    assert first["x1"] == pytest.approx((cx - bw / 2) * w, abs=0.06) and first["x2"] == pytest.approx((cx + bw / 2) * w, abs=0.06)
    assert first["y1"] == pytest.approx((cy - bh / 2) * h, abs=0.06) and first["face_w"] == pytest.approx(bw * w, abs=0.1)


@pytest.mark.parametrize("names", ["dict", "flow_list", "block_list"])
def test_prepare_yolo_with_data_yaml(tmp_path, names):
    src = tmp_path / "yolo_yaml"
    shutil.copytree(FIXTURES / "yolo_yaml", src)   # train/{images,labels} + valid/{images,labels}, data.yaml
    if names == "flow_list":
        (src / "data.yaml").write_text("names: [without_mask, with_mask, with_incorrect_mask]\nnc: 3\n")
    elif names == "block_list":
        (src / "data.yaml").write_text("nc: 3\nnames:\n  - without_mask\n  - with_mask\n  - 'with_incorrect_mask'\n")
    with pytest.raises(MaskwatchError, match=r"^unknown class names in yolo_yaml: with_incorrect_mask \(use --label-map "
                                             r"with_incorrect_mask=mask_worn_incorrectly\)$"):
        prepare([src], tmp_path / "out", size=32, redetect="none", progress=False)
    report = prepare([src], tmp_path / "out", size=32, redetect="none", val=0.0, test=0.0, progress=False,
                     label_map={"with_incorrect_mask": "mask_worn_incorrectly"})
    assert report.per_source == {"yolo_yaml": {"mask_worn_incorrectly": 5, "with_mask": 3, "without_mask": 1}}
    assert report.class_names_from["yolo_yaml"].endswith("data.yaml")
    rows = load_manifest(tmp_path / "out")
    assert {Path(r["path"]).parents[1].name for r in rows} == {"train", "valid"}


def test_yolo_faces_are_cut_exactly_like_voc(tmp_path):
    """The VOC fixture written as YOLO gives the same boxes and the same crops (the app's crop code)."""
    import cv2

    voc = tmp_path / "as_voc"
    shutil.copytree(FIXTURES / "voc", voc)
    yolo = tmp_path / "as_yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    img_path = voc / "images" / "maksssksksss250.jpg"
    h, w = cv2.imread(str(img_path)).shape[:2]
    shutil.copy(img_path, yolo / "images")
    import xml.etree.ElementTree as ET

    names = ["with_mask", "without_mask", "mask_weared_incorrect"]
    lines = []
    for o in ET.parse(voc / "annotations" / "maksssksksss250.xml").getroot().iter("object"):
        x1, y1, x2, y2 = (float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        lines.append(f"{names.index(o.findtext('name'))} {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} "
                     f"{(x2 - x1) / w!r} {(y2 - y1) / h!r}")
    (yolo / "labels" / "maksssksksss250.txt").write_text("\n".join(lines))
    (yolo / "classes.txt").write_text("\n".join(names))
    a = prepare([voc], tmp_path / "a", size=48, redetect="none", val=0, test=0, progress=False)
    b = prepare([yolo], tmp_path / "b", size=48, redetect="none", val=0, test=0, progress=False)
    assert a.faces == b.faces == 5
    ra, rb = load_manifest(tmp_path / "a"), load_manifest(tmp_path / "b")
    key = lambda r: (r["x1"], r["y1"])  # noqa: E731
    for x, y in zip(sorted(ra, key=key), sorted(rb, key=key)):
        assert x["label"] == y["label"] and x["source_label"] == y["source_label"]
        assert all(abs(x[k] - y[k]) <= 0.051 for k in ("x1", "y1", "x2", "y2", "face_w", "face_h"))
    xa, ya = load_split(ra, "all", 48)
    xb, yb = load_split(rb, "all", 48)
    order_a, order_b = np.argsort([key(r) for r in ra], axis=0)[:, 0], np.argsort([key(r) for r in rb], axis=0)[:, 0]
    assert np.array_equal(ya[order_a], yb[order_b])
    assert np.abs(xa[order_a].astype(int) - xb[order_b].astype(int)).max() <= 2   # same pixels up to rounding


def test_yolo_odd_files(tmp_path):
    """Polygon lines count as their bounding box, bad lines are counted, an index without a name is an
    unknown class, images without labels are skipped, and a folder without names is one clear error."""
    src = tmp_path / "odd"
    shutil.copytree(FIXTURES / "yolo_txt", src)
    lab = src / "labels" / "val" / "maksssksksss276.txt"
    lines = lab.read_text().splitlines()
    cls, cx, cy, bw, bh = (float(v) for v in lines[0].split())
    poly = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, cx - bw / 2, cy + bh / 2]
    lab.write_text(f"{int(cls)} " + " ".join(f"{v:.6f}" for v in poly) + "\n" + lines[1] + "\nnot a box\n1 0.5\n")
    (src / "labels" / "train" / "maksssksksss717.txt").unlink()
    report = prepare([src], tmp_path / "out", size=32, redetect="none", val=0, test=0, progress=False)
    assert report.faces == 2 and report.bad_label_lines == 2 and report.unlabelled_images == 1
    rows = load_manifest(tmp_path / "out")
    import cv2

    width = cv2.imread(str(src / "images" / "val" / "maksssksksss276.jpg")).shape[1]
    assert max(r["face_w"] for r in rows) == pytest.approx(bw * width, abs=0.1)
    lab.write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(MaskwatchError, match=r"unknown class names in odd: 7 \(use --label-map 7=LABEL;"):
        prepare([src], tmp_path / "out2", size=32, redetect="none", progress=False)
    (src / "classes.txt").unlink()
    with pytest.raises(MaskwatchError, match="has no class names: add classes.txt"):
        prepare([src], tmp_path / "out3", size=32, redetect="none", progress=False)
    (src / "data.yaml").write_text("names: [with_mask\n")
    with pytest.raises(MaskwatchError, match=r"cannot read .*data.yaml"):
        prepare([src], tmp_path / "out3", size=32, redetect="none", progress=False)


def test_sources_keep_distinct_names(tmp_path):
    crops, voc = make_sources(tmp_path)
    out = tmp_path / "data"
    report = prepare([crops, voc, FIXTURES / "yolo_txt"], out, size=32, redetect="none", progress=False)
    assert {r["source"] for r in load_manifest(out)} == {"crops", "voc", "yolo_txt"}
    assert report.sources["yolo_txt"]["kind"] == "yolo" and report.sources["crops"]["kind"] == "imagefolder"
    other = tmp_path / "elsewhere" / "voc"
    shutil.copytree(voc, other)
    with pytest.raises(MaskwatchError, match="have the same folder name 'voc'"):
        prepare([voc, other], tmp_path / "o2", size=32, redetect="none", progress=False)


def test_label_corrections_are_applied_at_prepare_with_their_reason_and_a_stale_one_fails(tmp_path):
    """Issue 21: a re-checked label is corrected at prepare (the dataset stays as it is); the
    manifest keeps the name the dataset wrote; a correction that no longer fits is one line."""
    from train.data import CORRECTIONS_FILE, load_corrections, read_corrections

    _, voc = make_sources(tmp_path)
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("source,image,box,from,to,reason\n"
                     "voc,images/maksssksksss250.jpg,1,without_mask,with_mask,a mask over nose and mouth\n"
                     "other,images/x.jpg,all,without_mask,with_mask,another source: not applied here\n")
    report = prepare([voc], tmp_path / "fixed", size=32, redetect="none", val=0.0, test=0.0, progress=False,
                     corrections=fixes)
    rows = load_manifest(tmp_path / "fixed" / "manifest.csv")
    prepare([voc], tmp_path / "plain", size=32, redetect="none", val=0.0, test=0.0, progress=False, corrections=None)
    plain = load_manifest(tmp_path / "plain" / "manifest.csv")
    assert report.corrected == {"voc": 1}
    assert sorted(r["label"] for r in plain).count("without_mask") == 2
    assert sorted(r["label"] for r in rows).count("without_mask") == 1
    changed = [r for r in rows if r["label"] != r["source_label"] and r["source_label"] == "without_mask"]
    assert len(changed) == 1 and changed[0]["label"] == "with_mask"

    fixes.write_text("source,image,box,from,to,reason\n"
                     "voc,images/maksssksksss250.jpg,0,without_mask,with_mask,object 0 is annotated with_mask\n")
    with pytest.raises(MaskwatchError, match="object 0 is annotated with_mask, not without_mask") as e:
        prepare([voc], tmp_path / "stale", size=32, redetect="none", progress=False, corrections=fixes)
    assert "\n" not in str(e.value) and not (tmp_path / "stale").exists()  # refused before anything is written
    assert str(fixes) in str(e.value) and "--no-corrections" in str(e.value)  # which file, and the way out
    fixes.write_text("source,image,box,from,to,reason\nvoc,images/gone.jpg,all,without_mask,with_mask,x\n")
    with pytest.raises(MaskwatchError, match="has no annotated image images/gone.jpg"):
        prepare([voc], tmp_path / "stale", size=32, redetect="none", progress=False, corrections=fixes)
    with pytest.raises(MaskwatchError, match="line 2: to must be one of"):
        read_corrections(io.StringIO("source,image,box,from,to,reason\nvoc,a.jpg,0,without_mask,masked,x\n"))
    shipped = load_corrections(CORRECTIONS_FILE)  # the repository's own file reads, each with a reason
    assert shipped and all(c.reason and c.source == "ilc2021-scenes" for c in shipped)
