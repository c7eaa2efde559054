"""Export a trained Keras model to the app's full-integer int8 TFLite (uint8 in/out) + metadata JSON.

Quantisation is calibrated on real training crops (no augmentation). The int8 model is then checked
against the float model on the validation split: agreement of the predicted class and the accuracy
of both. Its probabilities are calibrated too: one temperature fitted on the validation split's
int8 outputs (``train.calibration``) goes into the metadata as ``temperature``, with the expected
calibration error before and after (``ece_before``, ``ece_after``, val); the app applies it.

Example::

    from train.export import export
    export("runs/lite0/best.keras", "models/mask_classifier.tflite", data="runs/data")
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from pathlib import Path

import numpy as np

from maskwatch import LABELS, __version__
from maskwatch.errors import MaskwatchError


def load_keras_model(path: str | Path):
    import keras

    path = Path(path)
    if path.is_dir():
        path = path / "best.keras"
    if not path.is_file():
        raise MaskwatchError(f"Keras model not found: {path}")
    try:
        return keras.models.load_model(path, safe_mode=False)
    except Exception as e:
        raise MaskwatchError(f"cannot load Keras model {path}: {str(e).splitlines()[0][:200]}") from None


def convert_int8(model, calibration: np.ndarray, float_fallback: bool = False) -> bytes:
    """Full-integer TFLite with uint8 input and output, calibrated on ``calibration`` (uint8 crops)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if float_fallback:
            return conv.convert()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for img in calibration:
                yield [img[None].astype(np.float32)]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
        return conv.convert()


def tflite_predict(model_bytes_or_path, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Class probabilities (N, k) from a TFLite model (uint8 or float), dequantised."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    if isinstance(model_bytes_or_path, (bytes, bytearray)):
        interp = Interpreter(model_content=bytes(model_bytes_or_path), num_threads=2)
    else:
        interp = Interpreter(model_path=str(model_bytes_or_path), num_threads=2)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    probs = []
    current = None
    for s in range(0, len(x), batch):
        xb = x[s:s + batch]
        if current != len(xb):
            interp.resize_tensor_input(inp["index"], [len(xb), *x.shape[1:]])
            interp.allocate_tensors()
            current = len(xb)
        if inp["dtype"] == np.float32:
            xb = xb.astype(np.float32)
        elif inp["dtype"] != np.uint8:
            scale, zero = inp["quantization"]
            xb = np.clip(np.round(xb / scale + zero), -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], xb)
        interp.invoke()
        o = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            o = (o.astype(np.float32) - zero) * scale
        probs.append(o)
    return np.concatenate(probs) if probs else np.zeros((0, len(LABELS)), np.float32)


def basic_metrics(y: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1 and the 2-class (mask/no mask) accuracy."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    pred = probs.argmax(1)
    labels = list(range(len(LABELS)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    masked = np.array([True, False, True])  # worn incorrectly still counts as "mask" in the 2-class view
    return {
        "n": int(len(y)),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "macro_f1": round(float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)), 4),
        "per_class": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                            "f1": round(float(f[i]), 4), "support": int(s[i])} for i, lab in enumerate(LABELS)},
        "two_class_accuracy": round(float((masked[pred] == masked[y]).mean()), 4) if len(y) else 0.0,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "labels": list(LABELS),
    }


def calibrate_on_val(int8_probs: dict) -> dict:
    """Temperature of the exported model fitted on its val outputs; ECE/NLL before and after on val
    (and on test, where the temperature was not fitted). ``int8_probs``: split -> (probabilities, labels).

    Without val faces the temperature stays 1.0 (uncalibrated) and the summary says so."""
    from train.calibration import calibration_summary

    if "val" not in int8_probs:
        return {"temperature": 1.0, "fitted_on": None, "note": "no val faces: not calibrated"}
    def as_app(p):  # rows summed to 1 as MaskClassifier does (a uint8 softmax sums to 1 +- a few steps)
        p = np.clip(np.asarray(p, np.float32), 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)

    (p_val, y_val), (p_test, y_test) = int8_probs["val"], int8_probs.get("test", (None, None))
    summary = calibration_summary(as_app(p_val), y_val, None if p_test is None else as_app(p_test), y_test)
    return {"temperature": summary.pop("temperature"), "fitted_on": "val", "method":
            "temperature scaling of log-probabilities (int8 softmax outputs), NLL on val", **summary}


def export(model_path: str | Path, out: str | Path, data: str | Path, calib_size: int = 300, seed: int = 0,
           margin: float | None = None, version: str = __version__, command: str = "",
           training_seconds: float | None = None, evaluation: str | Path | None = None,
           progress: bool = True, apply_temperature: bool = True) -> dict:
    """Convert, check int8 vs float on val (and test if present), write ``out`` + ``out.json``.

    Returns the metadata dict (also written). ``data`` is the prepare folder whose training crops
    calibrate the quantisation and whose val/test splits check it. ``evaluation``: a ``metrics.json``
    written by ``maskwatch-train evaluate`` for this model, copied into the metadata (re-exporting
    with the same model, data and seed writes the same bytes, so the figures stay true).
    ``apply_temperature=False``: the temperature is still fitted and reported (``calibration``) but
    the metadata's ``temperature`` stays 1.0, so the app reads the raw outputs (for a model whose
    leave-one-source-out runs showed that the val-fitted temperature worsens calibration on sources
    it never saw).
    """
    from train.data import load_manifest, load_split

    model = load_keras_model(model_path)
    size = int(model.input_shape[1])
    run_dir = Path(model_path).parent if Path(model_path).is_file() else Path(model_path)
    cfg = {}
    if (run_dir / "config.json").is_file():
        cfg = json.loads((run_dir / "config.json").read_text())
    margin = float(margin if margin is not None else cfg.get("margin", 0.2))
    rows = load_manifest(data)
    cache = Path(data) / "cache"
    x_tr, _ = load_split(rows, "train", size, margin, cache_dir=cache, progress=progress)
    if len(x_tr) == 0:
        raise MaskwatchError(f"no training crops in {data} to calibrate the int8 model")
    pick = np.random.default_rng(seed).permutation(len(x_tr))[:calib_size]
    tflite = convert_int8(model, x_tr[pick])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tflite)

    checks, int8_probs = {}, {}
    for split in ("val", "test"):
        x, y = load_split(rows, split, size, margin, cache_dir=cache, progress=progress)
        if len(x) == 0:
            continue
        p_float = model.predict(x.astype(np.float32), batch_size=256, verbose=0)
        p_int8 = tflite_predict(out, x)
        int8_probs[split] = (p_int8, y)
        checks[split] = {
            "float": basic_metrics(y, p_float),
            "int8": basic_metrics(y, p_int8),
            "int8_float_agreement": round(float((p_float.argmax(1) == p_int8.argmax(1)).mean()), 4),
        }
    calibration = calibrate_on_val(int8_probs)
    calibration["applied"] = bool(apply_temperature and calibration.get("fitted_on"))
    meta = {
        "name": "maskwatch-mask-classifier",
        "version": version,
        "labels": list(LABELS),
        "input_size": [size, size],
        "color": "RGB",
        "input_dtype": "uint8",
        "preprocessing": "RGB uint8 0-255 crop from maskwatch.crop.crop_faces; normalisation is inside the model",
        "crop_margin": margin,
        "backbone": cfg.get("backbone", model.name),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "size_bytes": len(tflite),
        "temperature": calibration["temperature"] if apply_temperature else 1.0,
        "ece_before": calibration["val"]["ece_before"] if "val" in calibration else None,
        "ece_after": calibration["val"]["ece_after"] if "val" in calibration and apply_temperature else None,
        "calibration": calibration,
        "training": {"command": command, "data": [], "seconds": training_seconds, "config": cfg},
        "metrics": {split: {"int8": c["int8"], "float": {k: c["float"][k] for k in ("accuracy", "macro_f1", "two_class_accuracy")},
                            "int8_float_agreement": c["int8_float_agreement"]} for split, c in checks.items()},
    }
    if evaluation is not None:
        ev_path = Path(evaluation)
        if not ev_path.is_file():
            raise MaskwatchError(f"evaluation metrics not found: {ev_path}")
        ev = json.loads(ev_path.read_text())
        keep = ("data", "n", "accuracy", "macro_f1", "per_class", "incorrect_recall", "two_class",
                "confusion_matrix", "by_source", "by_face_width", "lowres", "float_vs_int8")
        meta["metrics"]["evaluate"] = {k: ev[k] for k in keep if k in ev}
    prep = Path(data) / "prepare.json"
    if prep.is_file():
        meta["training"]["data"] = json.loads(prep.read_text()).get("inputs", [])
    fit_json = run_dir / "fit.json"
    if training_seconds is None and fit_json.is_file():
        meta["training"]["seconds"] = json.loads(fit_json.read_text()).get("seconds_total")
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
