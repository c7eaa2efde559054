"""train.compare: a 2 backbones x 2 presets grid (1 epoch, 32 px, weights none) on synthetic crops."""

from __future__ import annotations

import json

import cv2
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

from test_train_evaluate import write_imagefolder  # noqa: E402  (tests/train/ is on sys.path under pytest)


def test_compare_grid_writes_table_json_and_chart(tmp_path, capsys):
    from train.cli import main

    data = write_imagefolder(tmp_path / "crops", per_class=(10, 10, 10), sides=(24, 48, 96), seed=3)
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(data), "--backbones", "lowres_cnn,efficientnet_lite0",
                 "--augment", "none,lowres", "--epochs", "1", "--size", "32", "--weights", "none",
                 "--batch-size", "16", "--seeds", "0", "--lite0-blocks", "2", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    md = (out / "compare.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| backbone")]
    cells = sorted((ln.split("|")[1].strip(), ln.split("|")[2].strip()) for ln in table)
    assert cells == [("efficientnet_lite0", "lowres"), ("efficientnet_lite0", "none"),
                     ("lowres_cnn", "lowres"), ("lowres_cnn", "none")]
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert len(rows) == 4
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0
        assert r["weights"] == "none" and r["n_eval"] > 0
        assert r["size_kb"] > 0 and r["ms_per_face"] > 0
        assert (tmp_path / "cmp" / "runs" / r["run"] / "model_int8.tflite").is_file()
        # the row's accuracy is the int8 model's on the prepared test split, through the app's classifier
        ev = json.loads((tmp_path / "cmp" / "runs" / r["run"] / "evaluation.json").read_text())
        assert ev["accuracy"] == r["accuracy"] and ev["model_kind"] == "tflite"
    # every run was evaluated on the same faces
    assert len({r["n_eval"] for r in rows}) == 1
    png = cv2.imread(str(out / "compare.png"))
    assert png is not None and png.std() > 10
    assert "efficientnet_lite0" in captured.out      # the table is printed too


@pytest.mark.parametrize("args,expected", [
    (["--backbones", "vgg99"], "unknown backbone"),
    (["--augment", "extreme"], "unknown augmentation preset"),
    (["--seeds", "a"], "integers"),
    (["--epochs", "0"], "at least 1"),
])
def test_compare_rejects_bad_grid_before_training(args, expected, tmp_path, capsys):
    from train.cli import main

    data = write_imagefolder(tmp_path / "crops", per_class=(2, 2, 2))
    code = main(["compare", "--data", str(data), "--out", str(tmp_path / "o"), "--size", "32", *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs").exists()


def test_compare_missing_manifest(tmp_path, capsys):
    from train.cli import main

    code = main(["compare", "--manifest", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert code == 2 and "manifest not found" in capsys.readouterr().err
