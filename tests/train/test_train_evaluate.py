"""train.evaluate: metrics by hand, buckets, low-res degradation, and the CLI on a tiny synthetic ImageFolder.

The model is a lowres_cnn (input 32, weights none) trained for a few seconds on synthetic "faces"
(skin ellipse; blue mask over nose and mouth / no mask / mask under the nose) and converted to int8
with train.export, so .tflite runs through the app's MaskClassifier.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

from maskwatch import LABELS  # noqa: E402


def synthetic_face(label: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """A crude face crop (BGR): skin ellipse, eyes, and a mask drawn per label; position, size and
    colours vary so that near-duplicate grouping in ``prepare`` keeps the faces apart."""
    img = np.empty((side, side, 3), np.uint8)
    img[:] = rng.integers(40, 220, 3)
    img = cv2.add(img, rng.integers(0, 40, (side, side, 3)).astype(np.uint8))   # background texture
    cx, cy = (side // 2 + int(rng.integers(-side // 12, side // 12 + 1)) for _ in range(2))
    r = int(side * rng.uniform(0.3, 0.4))
    skin = tuple(int(v) for v in rng.integers(70, 230, 3))
    cv2.ellipse(img, (cx, cy), (int(r * 0.8), r), 0, 0, 360, skin, -1)
    for dx in (-1, 1):
        cv2.circle(img, (cx + dx * r // 3, cy - r // 4), max(1, side // 24), (40, 40, 40), -1)
    mask = tuple(int(v) for v in rng.integers(0, 255, 3) // 2 + (120, 60, 0))
    nose = (cx, cy + r // 8)
    if label == 0:      # with_mask: covers nose and mouth
        cv2.rectangle(img, (cx - int(r * 0.75), cy - r // 10), (cx + int(r * 0.75), cy + int(r * 0.85)), mask, -1)
    elif label == 1:    # without_mask: mouth and nose visible
        cv2.rectangle(img, (cx - r // 3, cy + r // 2), (cx + r // 3, cy + r // 2 + max(1, side // 40)), (40, 40, 150), -1)
        cv2.circle(img, nose, max(1, side // 30), (60, 80, 120), -1)
    else:               # worn incorrectly: mask below the nose only
        cv2.rectangle(img, (cx - int(r * 0.75), cy + r // 3), (cx + int(r * 0.75), cy + int(r * 0.85)), mask, -1)
        cv2.circle(img, nose, max(1, side // 30), (60, 80, 120), -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def synthetic_batch(y, size, seed=0, sides=(20, 32, 40, 90)):
    """RGB uint8 (N, size, size, 3) synthetic faces drawn at ``sides`` px and resized like crops."""
    rng = np.random.default_rng(seed)
    x = [cv2.resize(cv2.cvtColor(synthetic_face(int(k), sides[i % len(sides)], rng), cv2.COLOR_BGR2RGB),
                    (size, size), interpolation=cv2.INTER_AREA if sides[i % len(sides)] > size else cv2.INTER_LINEAR)
         for i, k in enumerate(y)]
    return np.stack(x), np.asarray(y)


def write_imagefolder(root, per_class=(4, 4, 3), sides=(20, 40, 90), folders=None, seed=0):
    """ImageFolder under ``root``; ``folders`` maps label index -> folder name (aliases allowed)."""
    rng = np.random.default_rng(seed)
    folders = folders or {0: "with_mask", 1: "without_mask", 2: "mask_weared_incorrect"}
    for k, n in enumerate(per_class):
        d = root / folders[k]
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{k}_{i}.png"), synthetic_face(k, sides[i % len(sides)], rng))
    return root


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """(model.keras, model.tflite + model.json): lowres_cnn 32 px trained briefly on synthetic faces."""
    import keras

    from train.export import convert_int8
    from train.models import build_model

    keras.utils.set_random_seed(0)
    x, y = synthetic_batch(np.repeat(np.arange(3), 16), 32, seed=1)
    model = build_model("lowres_cnn", 32, weights="none")
    for layer in model.get_layer("backbone").layers:   # tiny data: let BatchNorm statistics settle fast
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.6
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32), y, epochs=8, batch_size=8, verbose=0)
    d = tmp_path_factory.mktemp("models")
    kpath = d / "model.keras"
    model.save(kpath)
    tpath = d / "model.tflite"
    tpath.write_bytes(convert_int8(model, x[::3]))
    tpath.with_suffix(".json").write_text(json.dumps(
        {"labels": list(LABELS), "input_size": [32, 32], "crop_margin": 0.2, "version": "test"}))
    return kpath, tpath


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = write_imagefolder(tmp_path_factory.mktemp("crops") / "data")
    other = root / "cats"                     # not a class name: ignored
    other.mkdir()
    cv2.imwrite(str(other / "cat.png"), np.zeros((30, 30, 3), np.uint8))
    (root / "with_mask" / "broken.jpg").write_bytes(b"not a jpeg")   # corrupt: skipped, counted
    return root


def cli(argv, capsys):
    from train.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- pure functions

def test_classification_metrics_match_hand_counts():
    from train.evaluate import classification_metrics

    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 2, 1, 0, 2, 1, 2])
    probs = np.eye(3, dtype=np.float32)[pred] * 0.8 + 0.2 / 3
    m = classification_metrics(y, probs)
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["confusion_matrix"]["labels"] == list(LABELS)
    assert m["confusion_matrix"]["matrix"] == [[2, 0, 1], [1, 1, 0], [0, 1, 2]]
    # per class: with_mask P=2/3 R=2/3; without_mask P=1/2 R=1/2; incorrect P=2/3 R=2/3
    assert m["per_class"]["with_mask"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["without_mask"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["mask_worn_incorrectly"]["support"] == 3
    assert m["incorrect_recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    # 2-class: the five with/without faces, decided by p(with) vs p(without): the with_mask face
    # predicted "incorrect" has p(with) == p(without) -> mask (ties go to mask) -> 4 of 5 right
    assert m["two_class"]["n"] == 5
    assert m["two_class"]["accuracy"] == pytest.approx(4 / 5)
    assert m["two_class"]["accuracy_strict"] == pytest.approx(3 / 5)
    json.dumps(m)  # JSON-ready


def test_face_width_buckets_split_at_16_32_64():
    from train.evaluate import by_face_width

    y = np.array([0, 1, 1, 2, 0, 0])
    pred = np.array([0, 1, 0, 2, 0, 1])
    w = np.array([10, 16, 31.9, 32, 64, np.nan])
    rows = {r["bucket"]: r for r in by_face_width(y, np.eye(3)[pred], w)}
    assert [rows[b]["n"] for b in ("<16", "16-32", "32-64", ">=64")] == [1, 2, 1, 1]
    assert rows["16-32"]["accuracy"] == pytest.approx(0.5)
    # only without_mask occurs in 16-32: P = 1, R = 1/2 -> F1 2/3 (absent classes are not averaged in)
    assert rows["16-32"]["macro_f1"] == pytest.approx(2 / 3)
    assert rows["16-32"]["recall"] == {"with_mask": None, "without_mask": 0.5, "mask_worn_incorrectly": None}
    assert rows["<16"]["accuracy"] == 1.0 and rows[">=64"]["accuracy"] == 1.0


def test_degrade_to_width_blurs_like_a_small_face():
    from train.evaluate import degrade_to_width

    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    crops = np.repeat(checker[None, :, :, None], 3, axis=3)
    out = degrade_to_width(crops, 16, margin=0.2)          # shrunk to a 19 px crop and back
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert out.std() < 0.2 * crops.std()                    # the 1-px pattern is gone
    same = degrade_to_width(crops, 64, margin=0.2)          # crop side 77 >= 64: untouched
    assert np.array_equal(same, crops)


# ---------------------------------------------------------------- the CLI

def test_evaluate_tflite_json_on_imagefolder(tiny_models, crops, capsys):
    from maskwatch.classification import MaskClassifier
    from train.evaluate import read_imagefolder

    _, tflite = tiny_models
    code, out, err = cli(["evaluate", "--model", str(tflite), "--data", str(crops), "--json"], capsys)
    assert code == 0, err
    m = json.loads(out)
    assert m["n"] == 11 and m["skipped_unreadable"] == 1          # cats/ ignored, broken.jpg skipped
    assert {k: v["support"] for k, v in m["per_class"].items()} == {
        "with_mask": 4, "without_mask": 4, "mask_worn_incorrectly": 3}  # mask_weared_incorrect mapped
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == 11
    # the same figures straight from the app's classifier
    clf = MaskClassifier(tflite)
    ds = read_imagefolder(crops)
    pred = clf.classify(ds.at_size(clf.input_size)).argmax(1)
    assert m["accuracy"] == pytest.approx(float(np.mean(pred == ds.y)))
    assert m["accuracy"] >= 0.5     # the briefly trained model learned the synthetic classes


def test_evaluate_keras_report_buckets_and_float_vs_int8(tiny_models, crops, tmp_path, capsys):
    keras_path, tflite = tiny_models
    out_dir = tmp_path / "report"
    code, out, err = cli(["evaluate", "--model", str(tflite), "--data", str(crops), "--float-model", str(keras_path),
                          "--size-buckets", "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "confusion matrix" in out
    m = json.loads((out_dir / "metrics.json").read_text())
    assert sum(r["n"] for r in m["by_face_width"]) == m["n"]
    # crops 20/40/90 px wide -> faces ~14/29/64 px
    assert [r["n"] for r in m["by_face_width"]] == [5, 3, 0, 3]
    assert [r["face_px"] for r in m["lowres"]] == [16, 24, 32]
    fv = m["float_vs_int8"]
    assert fv["n"] == 11 and 0.0 <= fv["agreement"] <= 1.0
    assert fv["models"][1]["accuracy"] == pytest.approx(m["accuracy"])
    png = cv2.imread(str(out_dir / "confusion_matrix.png"))
    assert png is not None and png.std() > 10
    n_wrong = m["n"] - sum(m["confusion_matrix"]["matrix"][i][i] for i in range(3))
    assert len(m["mistakes"]) == min(24, n_wrong)
    assert all(mk["true"] != mk["predicted"] for mk in m["mistakes"])
    assert (out_dir / "mistakes.png").is_file() == bool(n_wrong)
    report = (out_dir / "report.md").read_text()
    assert "Float vs int8" in report and "By face width" in report
    # an ImageFolder has no val split: ECE of the raw outputs only, no fitted temperature
    c = m["calibration"]
    assert 0.0 <= c["ece_before"] <= 1.0 and c["temperature"] is None and c["ece_after"] is None
    assert "## Calibration" in report and "no val split" in report
    assert cv2.imread(str(out_dir / "reliability.png")) is not None and "reliability.png" in report

    code, out, err = cli(["evaluate", "--model", str(keras_path), "--data", str(crops), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(fv["models"][0]["accuracy"])


def test_evaluate_manifest_split(tiny_models, tmp_path, capsys):
    from train.data import load_manifest, prepare

    src = write_imagefolder(tmp_path / "src", per_class=(10, 10, 10), sides=(24, 48, 96), seed=3)
    src2 = write_imagefolder(tmp_path / "other", per_class=(6, 6, 6), sides=(30, 60), seed=4)
    prepare([src, src2], tmp_path / "prep", size=32, redetect="none", progress=False, val=0.2, test=0.3)
    test_rows = [r for r in load_manifest(tmp_path / "prep") if r["split"] == "test"]
    n_test = len(test_rows)
    _, tflite = tiny_models
    code, out, err = cli(["evaluate", "--model", str(tflite), "--manifest", str(tmp_path / "prep"), "--split", "test",
                          "--size-buckets", "--json"], capsys)
    assert code == 0, err
    m = json.loads(out)
    assert m["n"] == n_test > 0
    assert m["face_width_source"] == "manifest"
    assert sum(r["n"] for r in m["by_face_width"]) == n_test
    # calibration: ECE of the test faces, raw and with a temperature fitted on the val split only
    from maskwatch.classification import MaskClassifier
    from train.calibration import calibrate, expected_calibration_error, fit_temperature
    from train.evaluate import read_manifest_split

    c = m["calibration"]
    n_val = sum(r["split"] == "val" for r in load_manifest(tmp_path / "prep"))
    assert c["fitted_on"].endswith("[val]") and c["n_fit"] == n_val > 0 and c["in_sample"] is False
    clf = MaskClassifier(tflite)
    raw = {sp: (clf.classify(read_manifest_split(tmp_path / "prep", sp, 32, 0.2).at_size(32), calibrated=False),
                read_manifest_split(tmp_path / "prep", sp, 32, 0.2).y) for sp in ("val", "test")}
    t = fit_temperature(*raw["val"])
    assert c["temperature"] == pytest.approx(t)
    assert c["ece_before"] == pytest.approx(expected_calibration_error(*raw["test"]))
    assert c["ece_after"] == pytest.approx(expected_calibration_error(calibrate(raw["test"][0], t), raw["test"][1]))
    assert c["model_temperature"] == 1.0 and c["ece_model"] == pytest.approx(c["ece_before"])
    # a model whose metadata carries a temperature: the app's probabilities (ece_model) use it, the fit does not
    warm = tmp_path / "warm.tflite"
    warm.write_bytes(tflite.read_bytes())
    warm.with_suffix(".json").write_text(json.dumps({**json.loads(tflite.with_suffix(".json").read_text()),
                                                     "temperature": 3.0}))
    code, out, err = cli(["evaluate", "--model", str(warm), "--manifest", str(tmp_path / "prep"), "--split", "test",
                          "--json"], capsys)
    assert code == 0, err
    mw = json.loads(out)
    cw = mw["calibration"]
    assert cw["model_temperature"] == 3.0 and cw["ece_before"] == pytest.approx(c["ece_before"])
    assert cw["temperature"] == pytest.approx(t) and mw["accuracy"] == m["accuracy"]
    assert cw["ece_model"] == pytest.approx(expected_calibration_error(calibrate(raw["test"][0], 3.0), raw["test"][1]))
    code, out, err = cli(["evaluate", "--model", str(warm), "--manifest", str(tmp_path / "prep"), "--split", "val",
                          "--json"], capsys)
    assert code == 0 and json.loads(out)["calibration"]["in_sample"] is True
    sources = {r["source"] for r in test_rows}
    if len(sources) > 1:
        assert {r["source"] for r in m["by_source"]} == sources
        assert sum(r["n"] for r in m["by_source"]) == n_test
    else:
        assert "by_source" not in m


@pytest.mark.parametrize("case", ["missing_model", "no_metadata", "empty", "unknown_only", "all_corrupt", "missing_dir"])
def test_evaluate_bad_inputs_give_one_line_error(case, tiny_models, tmp_path, capsys):
    _, tflite = tiny_models
    model, data = str(tflite), tmp_path / "data"
    data.mkdir()
    if case == "missing_model":
        model = str(tmp_path / "nope.tflite")
    elif case == "no_metadata":
        bare = tmp_path / "bare.tflite"
        bare.write_bytes(tflite.read_bytes())
        model = str(bare)
        write_imagefolder(data)
    elif case == "empty":
        (data / "with_mask").mkdir()
    elif case == "unknown_only":
        write_imagefolder(data, folders={0: "cats", 1: "dogs", 2: "birds"})
    elif case == "all_corrupt":
        (data / "without_mask").mkdir()
        (data / "without_mask" / "a.jpg").write_bytes(b"\x00" * 10)
    elif case == "missing_dir":
        data = tmp_path / "absent"
    code, out, err = cli(["evaluate", "--model", model, "--data", str(data), "--json"], capsys)
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("maskwatch-train: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    expected = {"missing_model": "not found", "no_metadata": "metadata", "empty": "no images",
                "unknown_only": "no class folders", "all_corrupt": "unreadable", "missing_dir": "not found"}[case]
    assert expected in lines[0]
