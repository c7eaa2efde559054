"""fit 1 tiny epoch on the fixtures, export int8, and the app's MaskClassifier loads and classifies it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("imagehash")

from maskwatch import LABELS  # noqa: E402
from train import cli  # noqa: E402
from train.data import load_split, prepare  # noqa: E402

pytestmark = pytest.mark.train
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_data")
    shutil.copytree(FIXTURES / "crops", tmp / "crops")
    shutil.copytree(FIXTURES / "voc", tmp / "voc")
    out = tmp / "data"
    prepare([tmp / "crops", tmp / "voc"], out, size=32, redetect="none", val=0.2, test=0.2, progress=False)
    return out


def test_fit_export_classify(tmp_path, data_dir, capsys):
    from maskwatch.classification import MaskClassifier

    backbone = "efficientnet_lite0"
    run = tmp_path / "run"
    rc = cli.main(["fit", "--data", str(data_dir), "--out", str(run), "--backbone", backbone, "--size", "32",
                   "--weights", "none", "--epochs-head", "1", "--epochs-finetune", "0", "--batch-size", "8",
                   "--lite0-blocks", "4", "--no-progress"])
    assert rc == 0
    for name in ("config.json", "history.csv", "best.keras", "fit.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["backbone"] == backbone
    model_path = tmp_path / "model" / "mask_classifier.tflite"
    rc = cli.main(["export", str(run / "best.keras"), "--data", str(data_dir), "--out", str(model_path),
                   "--calib-size", "10", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert f"calibration: temperature {meta['temperature']:.3f} fitted on val" in printed
    assert meta["labels"] == list(LABELS) and meta["input_size"] == [32, 32] and meta["crop_margin"] == 0.2
    assert meta["input_dtype"] == "uint8" and meta["version"]
    # calibrated on val with the exported int8 model: temperature and ECE before / after in the metadata
    assert meta["temperature"] > 0 and meta["calibration"]["fitted_on"] == "val"
    assert 0.0 <= meta["ece_before"] <= 1.0 and 0.0 <= meta["ece_after"] <= 1.0
    assert meta["calibration"]["val"]["nll_after"] <= meta["calibration"]["val"]["nll_before"] + 1e-4
    assert meta["calibration"]["val"]["n"] == meta["metrics"]["val"]["int8"]["n"]
    clf = MaskClassifier(model_path)
    assert clf.input_size == 32 and clf.margin == 0.2 and tuple(clf.labels) == LABELS
    assert clf.temperature == meta["temperature"]
    x, _ = load_split(data_dir, "train", 32)
    probs = clf.classify(x[:5])
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1.0, atol=0.02)
    import cv2

    scene = cv2.imread(str(FIXTURES / "voc" / "images" / "maksssksksss250.jpg"))
    p2 = clf.classify_faces(scene, np.array([[180, 64, 222, 107], [85, 65, 118, 103]], np.float32))
    assert p2.shape == (2, 3)

    # --temperature none: fitted and reported, not applied (the app reads the raw outputs)
    raw_path = tmp_path / "model" / "raw.tflite"
    rc = cli.main(["export", str(run / "best.keras"), "--data", str(data_dir), "--out", str(raw_path),
                   "--calib-size", "10", "--no-progress", "--temperature", "none"])
    assert rc == 0
    assert "(not applied: --temperature none" in capsys.readouterr().out
    raw = json.loads(raw_path.with_suffix(".json").read_text())
    assert raw["temperature"] == 1.0 and raw["calibration"]["applied"] is False
    assert raw["calibration"]["temperature"] == meta["temperature"] and meta["calibration"]["applied"] is True
    assert MaskClassifier(raw_path).temperature == 1.0


def test_fit_from_scratch_lowres_cnn(tmp_path, data_dir):
    from train.fit import FitConfig, fit

    run = fit(FitConfig(data=str(data_dir), out=str(tmp_path / "run"), backbone="lowres_cnn", input_size=32,
                        weights="none", epochs_head=1, epochs_finetune=0, batch_size=8), progress=False)
    summary = json.loads((run / "fit.json").read_text())
    assert summary["train_faces"] > 0 and 0.0 <= summary["val"]["accuracy"] <= 1.0
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,phase") and history[1].startswith("1,scratch")


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = cli.main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--redetect", "none", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("maskwatch-train: error: no labelled faces") and "\n" not in err
    rc = cli.main(["fit", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--weights", "none"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "manifest not found" in err and "Traceback" not in err
    rc = cli.main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--weights", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("maskwatch-train: error:")
    rc = cli.main(["export", str(tmp_path / "missing.keras"), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Keras model not found" in err


def test_lowres_heavy_augmentation_option(tmp_path, data_dir):
    """The ``lowres_heavy`` preset (JPEG at the small size, down to 8 px) degrades more and trains via the CLI."""
    from train.augment import AugmentPreset, Augmenter

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)

    def detail(batch):  # mean absolute difference of horizontal neighbours: high-frequency content left
        return float(np.abs(np.diff(batch.astype(np.int16), axis=2)).mean())

    assert detail(Augmenter("lowres_heavy", 0)(x)) < 0.8 * detail(Augmenter("lowres", 0)(x))
    round_trip = dict(lowres=1.0, lowres_px=(16, 16), jpeg_q=(10, 11))
    plain = Augmenter(AugmentPreset(**round_trip), 0)(x[:4])
    small_jpeg = Augmenter(AugmentPreset(**round_trip, lowres_jpeg=1.0), 0)(x[:4])
    assert plain.shape == small_jpeg.shape == x[:4].shape and not np.array_equal(plain, small_jpeg)

    run = tmp_path / "run"
    rc = cli.main(["fit", "--data", str(data_dir), "--out", str(run), "--backbone", "lowres_cnn", "--size", "32",
                   "--weights", "none", "--epochs-head", "1", "--epochs-finetune", "0", "--batch-size", "8",
                   "--augment", "lowres_heavy", "--no-progress"])
    assert rc == 0 and json.loads((run / "config.json").read_text())["augment"] == "lowres_heavy"
    assert (run / "best.keras").is_file()
