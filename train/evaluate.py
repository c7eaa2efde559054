"""Evaluate a mask classifier (int8 ``.tflite`` or float ``.keras``) on face crops, honestly.

Metrics come from scikit-learn: accuracy, macro F1, per-class precision/recall/F1/support, the
confusion matrix (rows = true, columns = predicted, in ``maskwatch.LABELS`` order), a 2-class view
(mask vs no mask) and ``mask_worn_incorrectly`` recall on its own. On a prepared split (a manifest
from ``maskwatch-train prepare``) it also reports accuracy/F1 by face-width bucket, a low-res slice
(faces shrunk to 16/24/32 px wide and upscaled back as the app does) and float vs int8 side by side.

Calibration: the expected calibration error (ECE, ``train.calibration``) of the model's raw
probabilities, with the temperature in its metadata (what the app reads) and, on a manifest, with a
temperature fitted on the manifest's *val* split (the training sources' validation faces, never the
faces reported on); ``--out`` adds ``reliability.png``.

``.tflite`` models run through the app's own :class:`maskwatch.classification.MaskClassifier`, so
the numbers are what the app gets.

The model being measured is :mod:`train.predictor`, the reports (markdown, pictures, terminal) are
:mod:`train.evaluate_report`; every name of both is importable from here too.

Examples::

    maskwatch-train evaluate --model models/mask_classifier.tflite --data my_crops/ --json
    maskwatch-train evaluate --model models/mask_classifier.tflite --manifest runs/data --split test \\
        --float-model runs/fit/best.keras --size-buckets --out runs/eval

    from train.evaluate import load_predictor, classification_metrics
    clf = load_predictor("models/mask_classifier.tflite")
    probs = clf.predict(crops)                         # RGB uint8 (N, S, S, 3) -> (N, 3)
    m = classification_metrics(y_true, probs)           # dict, JSON-ready
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.classification import apply_temperature
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError
from train.evaluate_report import (  # noqa: F401 - re-exported: the reports lived here
    _fmt, calibration_markdown, print_report, public, report_markdown, save_confusion_matrix, save_mistakes,
    write_report,
)
from train.predictor import Predictor, _keras_metadata, load_keras_model, load_predictor  # noqa: F401 - re-exported

log = logging.getLogger("maskwatch.train.evaluate")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
WIDTH_BUCKETS = ((0.0, 16.0, "<16"), (16.0, 32.0, "16-32"), (32.0, 64.0, "32-64"), (64.0, float("inf"), ">=64"))
"""Face-width buckets in source pixels: [lo, hi)."""
LOWRES_WIDTHS = (16, 24, 32)
"""Face widths (px) of the low-res slice."""
MAX_MISTAKES = 24
"""Most confident mistakes listed in the metrics and drawn in ``mistakes.png``."""
MASK, NO_MASK, INCORRECT = (LABELS.index(k) for k in ("with_mask", "without_mask", "mask_worn_incorrectly"))


# ---------------------------------------------------------------- data

@dataclass
class EvalData:
    """Original-resolution RGB crops (a list, sizes may differ), labels, and face widths (px, NaN if unknown)."""

    images: list
    y: np.ndarray
    face_w: np.ndarray
    paths: list
    source: str
    skipped: int = 0
    sources: list | None = None   # the manifest's source dataset of each face

    def at_size(self, size: int) -> np.ndarray:
        """All crops resized to ``size`` (area when shrinking, bilinear when enlarging, as ``crop_face``)."""
        out = np.empty((len(self.images), size, size, 3), np.uint8)
        for i, img in enumerate(self.images):
            out[i] = resize_crop(img, size)
        return out


def resize_crop(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def label_of_folder(name: str) -> str | None:
    """The label a class folder stands for (aliases such as ``mask_weared_incorrect`` map), else None."""
    try:
        from train.data import canonical_label
    except ImportError:  # pragma: no cover - train.data is part of this package
        key = name.strip().lower().replace("-", "_")
        return key if key in LABELS else None
    return canonical_label(name)


def read_imagefolder(root: str | Path, margin: float = DEFAULT_MARGIN, size: int | None = None) -> EvalData:
    """An ImageFolder of face crops: ``root/<label>/**/*.jpg|png``; other folder names are ignored.

    Unreadable images are skipped and counted (``skipped``). The face width of a crop is estimated
    from its width as ``width / (1 + 2 * margin)`` (crops framed like the app's crops). With ``size``
    the crops are resized while loading (keeps memory small on big folders).
    """
    root = Path(root)
    if not root.is_dir():
        raise MaskwatchError(f"data folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    class_dirs = [(d, label_of_folder(d.name)) for d in subdirs]
    class_dirs = [(d, lab) for d, lab in class_dirs if lab is not None]
    if not class_dirs:
        found = ", ".join(d.name for d in subdirs[:8]) or "no sub-folders"
        raise MaskwatchError(f"no class folders under {root} (need {', '.join(LABELS)} or an alias; found: {found})")
    images, ys, widths, paths, skipped = [], [], [], [], 0
    for d, lab in class_dirs:
        for f in sorted(d.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None or img.size == 0:
                skipped += 1
                continue
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            images.append(resize_crop(rgb, size) if size else rgb)
            ys.append(LABELS.index(lab))
            widths.append(img.shape[1] / (1.0 + 2.0 * margin))
            paths.append(str(f))
    if not images:
        if skipped:
            raise MaskwatchError(f"all {skipped} images under {root} are unreadable (corrupt or not images)")
        raise MaskwatchError(f"no images in the class folders under {root}")
    if skipped:
        log.warning("skipped %d unreadable images under %s", skipped, root)
    return EvalData(images, np.array(ys, np.int64), np.array(widths, np.float32), paths, str(root), skipped)


def read_manifest_split(manifest: str | Path, split: str, size: int, margin: float,
                        cache_dir: str | Path | None = None) -> EvalData:
    """Faces of one split of a ``prepare`` manifest, cut with the app's crop function at ``size``
    (cached as ``.npz`` under ``cache_dir`` when given, as ``train.fit`` does)."""
    from train.data import face_widths, load_manifest, load_split

    rows = load_manifest(manifest)
    x, y = load_split(rows, split, size, margin, cache_dir=cache_dir)
    if len(x) == 0:
        raise MaskwatchError(f"split {split!r} of {manifest} has no faces")
    w = face_widths(rows, split)
    w = np.where(w > 0, w, np.nan).astype(np.float32)
    sel = [r for r in rows if split == "all" or r["split"] == split]
    return EvalData(list(x), y, w, [r["path"] for r in sel], f"{manifest} [{split}]",
                    sources=[r.get("source") or "" for r in sel])


# ---------------------------------------------------------------- metrics

def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """JSON-ready metrics of 3-class probabilities against integer labels (LABELS order).

    ``two_class``: samples whose true label is with_mask or without_mask; ``accuracy`` decides by
    p(with_mask) vs p(without_mask), ``accuracy_strict`` needs the 3-class prediction to be right.
    """
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float32)
    pred = probs.argmax(axis=1)
    labels = list(range(len(LABELS)))
    report = classification_report(y_true, pred, labels=labels, target_names=list(LABELS), output_dict=True,
                                   zero_division=0)
    per_class = {lab: {k: float(v) if k != "support" else int(v) for k, v in report[lab].items()} for lab in LABELS}
    two = np.isin(y_true, [MASK, NO_MASK])
    two_class = {"n": int(two.sum()), "accuracy": None, "accuracy_strict": None}
    if two.any():
        decided = np.where(probs[two, MASK] >= probs[two, NO_MASK], MASK, NO_MASK)
        two_class["accuracy"] = float(np.mean(decided == y_true[two]))
        two_class["accuracy_strict"] = float(np.mean(pred[two] == y_true[two]))
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)) if len(y_true) else None,
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": per_class,
        "incorrect_recall": per_class["mask_worn_incorrectly"]["recall"] if per_class["mask_worn_incorrectly"]["support"] else None,
        "two_class": two_class,
        "confusion_matrix": {"labels": list(LABELS),
                             "matrix": confusion_matrix(y_true, pred, labels=labels).tolist()},
    }


def _short(y: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    return {"n": int(len(y)),
            "accuracy": float(np.mean(pred == y)) if len(y) else None,
            "macro_f1": float(f1_score(y, pred, labels=list(range(len(LABELS))), average="macro", zero_division=0))
            if len(y) else None}


def by_face_width(y_true: np.ndarray, probs: np.ndarray, face_w: np.ndarray) -> list[dict]:
    """Accuracy, macro F1 and per-class recall per face-width bucket (<16, 16-32, 32-64, >=64 px);
    unknown widths (NaN) are left out.

    A bucket's macro F1 averages the classes that occur in it (true labels): a class absent from a
    bucket has no recall, and counting it as F1 = 0 would say nothing about that bucket."""
    from sklearn.metrics import f1_score

    y_true, face_w = np.asarray(y_true), np.asarray(face_w, np.float32)
    pred = np.asarray(probs).argmax(axis=1)
    out = []
    for lo, hi, name in WIDTH_BUCKETS:
        sel = (face_w >= lo) & (face_w < hi)
        row = {"bucket": name, "n": int(sel.sum()), "accuracy": None, "macro_f1": None}
        if sel.any():
            yt, yp = y_true[sel], pred[sel]
            present = sorted(set(yt.tolist()))
            row["accuracy"] = float(np.mean(yp == yt))
            row["macro_f1"] = float(f1_score(yt, yp, labels=present, average="macro", zero_division=0))
            row["support"] = {lab: int(np.sum(yt == i)) for i, lab in enumerate(LABELS)}
            row["recall"] = {lab: float(np.mean(yp[yt == i] == i)) if np.any(yt == i) else None
                             for i, lab in enumerate(LABELS)}
        out.append(row)
    return out


def by_source(y_true: np.ndarray, probs: np.ndarray, sources: list[str]) -> list[dict]:
    """Accuracy, macro F1 (classes present) and per-class support for each source dataset: a
    cross-dataset view (a model can be good on one source and poor on another)."""
    from sklearn.metrics import f1_score

    y_true, pred, sources = np.asarray(y_true), np.asarray(probs).argmax(axis=1), np.asarray(sources)
    out = []
    for src in sorted(set(sources.tolist())):
        sel = sources == src
        yt, yp = y_true[sel], pred[sel]
        out.append({"source": src, "n": int(sel.sum()), "accuracy": float(np.mean(yp == yt)),
                    "macro_f1": float(f1_score(yt, yp, labels=sorted(set(yt.tolist())), average="macro",
                                               zero_division=0)),
                    "support": {lab: int(np.sum(yt == i)) for i, lab in enumerate(LABELS)}})
    return out


def degrade_to_width(crops: np.ndarray, face_px: int, margin: float) -> np.ndarray:
    """Simulate a face ``face_px`` wide: shrink each crop (INTER_AREA) to the side the app would cut for
    such a face (``face_px * (1 + 2 * margin)``) and enlarge it back (INTER_LINEAR, as ``crop_face``)."""
    size = crops.shape[1]
    side = max(2, int(round(face_px * (1.0 + 2.0 * margin))))
    if side >= size:
        return crops.copy()
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        small = cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def lowres_slice(predictor: Predictor, x: np.ndarray, y: np.ndarray, widths=LOWRES_WIDTHS) -> list[dict]:
    """Accuracy/macro F1 with every face degraded to each width in ``widths`` (see :func:`degrade_to_width`).

    Faces already smaller than the target are degraded anyway (the crop is at model size); the row
    says so with ``crop_side``."""
    rows = []
    for px in widths:
        xd = degrade_to_width(x, px, predictor.margin)
        pred = predictor.predict(xd).argmax(axis=1)
        rows.append({"face_px": int(px), "crop_side": int(round(px * (1 + 2 * predictor.margin))), **_short(y, pred)})
    return rows


def float_vs_int8(y: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, name_a: str, name_b: str) -> dict:
    """Two models on the same samples: accuracy and macro F1 of each, agreement of their predictions."""
    pa, pb = np.asarray(probs_a).argmax(1), np.asarray(probs_b).argmax(1)
    return {"n": int(len(y)), "models": [{"model": name_a, **_short(y, pa)}, {"model": name_b, **_short(y, pb)}],
            "agreement": float(np.mean(pa == pb)) if len(y) else None,
            "max_abs_prob_diff": float(np.max(np.abs(np.asarray(probs_a) - np.asarray(probs_b)))) if len(y) else None}


def time_per_face(predictor: Predictor, x: np.ndarray, batch: int = 32, repeats: int = 5) -> float:
    """Median milliseconds per face of ``predictor`` on batches of ``batch`` crops (after one warm-up)."""
    xb = np.resize(x, (batch,) + x.shape[1:]) if len(x) < batch else x[:batch]
    predictor.predict(xb, batch_size=batch)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict(xb, batch_size=batch)
        times.append((time.perf_counter() - t) * 1000.0 / batch)
    return float(np.median(times))


def _val_split_probs(predictor: Predictor, manifest, cache_dir) -> tuple[np.ndarray, np.ndarray] | None:
    """Raw probabilities and labels of the manifest's val split, or None when it has no faces."""
    from train.data import load_manifest

    if not any(r["split"] == "val" for r in load_manifest(manifest)):
        return None
    ds = read_manifest_split(manifest, "val", predictor.input_size, predictor.margin, cache_dir)
    return predictor.predict(ds.at_size(predictor.input_size), calibrated=False), ds.y


def calibration_metrics(y: np.ndarray, probs_raw: np.ndarray, model_temperature: float = 1.0,
                        val: tuple[np.ndarray, np.ndarray] | None = None, fitted_on: str | None = None,
                        in_sample: bool = False) -> dict:
    """ECE of the raw probabilities (``ece_before``), with the model's own temperature (``ece_model``:
    what the app reads) and with a temperature fitted on ``val`` = (raw probabilities, labels)
    (``temperature``, ``ece_after``; None without val faces). ``in_sample``: the faces reported on
    are the ones the temperature was fitted on (evaluating the val split itself)."""
    from train.calibration import ECE_BINS, calibrate, expected_calibration_error, fit_temperature

    out = {"bins": ECE_BINS, "ece_before": expected_calibration_error(probs_raw, y),
           "model_temperature": float(model_temperature),
           "ece_model": expected_calibration_error(apply_temperature(probs_raw, model_temperature), y),
           "temperature": None, "ece_after": None, "fitted_on": None, "n_fit": 0, "in_sample": False}
    if val is not None and len(val[1]):
        t = fit_temperature(*val)
        out.update(temperature=t, ece_after=expected_calibration_error(calibrate(probs_raw, t), y),
                   fitted_on=fitted_on, n_fit=int(len(val[1])), in_sample=bool(in_sample))
    return out


# ---------------------------------------------------------------- the whole evaluation

def evaluate(model: str | Path, data: str | Path | None = None, manifest: str | Path | None = None,
             split: str = "test", float_model: str | Path | None = None, size_buckets: bool = False,
             cache_dir: str | Path | None = None, keep_crops: bool = False) -> dict:
    """Evaluate ``model`` on an ImageFolder (``data``) or a manifest split; returns the metrics dict.

    With ``size_buckets`` adds ``by_face_width`` and ``lowres``; with ``float_model`` adds
    ``float_vs_int8`` (both models on the same faces)."""
    if (data is None) == (manifest is None):
        raise MaskwatchError("give either --data DIR or --manifest CSV")
    predictor = load_predictor(model)
    other = load_predictor(float_model) if float_model is not None else None
    if manifest is not None:
        ds = read_manifest_split(manifest, split, predictor.input_size, predictor.margin, cache_dir)
    else:
        same = other is None or other.input_size == predictor.input_size
        ds = read_imagefolder(data, predictor.margin, size=predictor.input_size if same else None)
    x = ds.at_size(predictor.input_size)
    probs_raw = predictor.predict(x, calibrated=False)
    probs = apply_temperature(probs_raw, predictor.temperature)   # what the app reads
    result = {"model": str(predictor.path), "model_kind": predictor.kind, "input_size": predictor.input_size,
              "data": ds.source, "skipped_unreadable": ds.skipped, **classification_metrics(ds.y, probs)}
    val = None
    if manifest is not None:   # the val split (the training sources' validation faces) fits a temperature
        val = probs_raw, ds.y
        if split != "val":
            val = _val_split_probs(predictor, manifest, cache_dir)
    result["calibration"] = calibration_metrics(ds.y, probs_raw, predictor.temperature, val,
                                                fitted_on=f"{manifest} [val]" if manifest is not None else None,
                                                in_sample=split in ("val", "all"))
    if keep_crops:
        result["_reliability"] = (probs_raw, ds.y)
    wrong = np.flatnonzero(probs.argmax(1) != ds.y)
    worst = wrong[np.argsort(-probs[wrong].max(axis=1))][:MAX_MISTAKES]   # most confident mistakes first
    result["mistakes"] = [{"path": ds.paths[i], "true": LABELS[int(ds.y[i])], "predicted": LABELS[int(probs[i].argmax())],
                           "p": float(probs[i].max())} for i in worst]
    if keep_crops:
        result["_mistake_crops"] = x[worst]   # for write_report; not part of the JSON
    if ds.sources is not None and len(set(ds.sources)) > 1:
        result["by_source"] = by_source(ds.y, probs, ds.sources)
    if size_buckets:
        result["face_width_source"] = "manifest" if manifest is not None else "crop width / (1 + 2 * margin)"
        result["by_face_width"] = by_face_width(ds.y, probs, ds.face_w)
        result["lowres"] = lowres_slice(predictor, x, ds.y)
    if other is not None:
        if other.input_size == predictor.input_size:
            xo = x
        elif manifest is not None:  # cut again at the other model's size, as serving would
            xo = read_manifest_split(manifest, split, other.input_size, other.margin, cache_dir).at_size(other.input_size)
        else:
            xo = ds.at_size(other.input_size)
        # raw outputs on both sides: the difference is the quantisation's, not a calibration's
        result["float_vs_int8"] = float_vs_int8(ds.y, other.predict(xo, calibrated=False), probs_raw, other.name,
                                                predictor.name)
    return result


# ---------------------------------------------------------------- CLI

def register(subparsers) -> None:
    """Add ``evaluate`` to ``maskwatch-train``'s sub-commands."""
    p = subparsers.add_parser(
        "evaluate", help="metrics of a .tflite/.keras model on face crops (ImageFolder or prepared split)",
        description="Evaluate a mask classifier on an ImageFolder of face crops (class folders with_mask, "
                    "without_mask, mask_worn_incorrectly or aliases; other folders are ignored) or on a split "
                    "of a prepare manifest.")
    p.add_argument("--model", required=True, help="model file: .tflite (with its .json metadata) or .keras")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="ImageFolder of face crops")
    src.add_argument("--manifest", help="manifest.csv (or its folder) written by maskwatch-train prepare")
    p.add_argument("--split", default="test", help="manifest split: train, val, test or all (default test)")
    p.add_argument("--float-model", help="the float .keras model to compare with on the same faces")
    p.add_argument("--size-buckets", action="store_true",
                   help="add accuracy/F1 by face width and the 16/24/32 px low-res slice")
    p.add_argument("--json", action="store_true", help="print one metrics JSON to stdout")
    p.add_argument("--out", help="folder for report.md, metrics.json and confusion_matrix.png")
    p.set_defaults(func=run)


def run(args) -> int:
    m = evaluate(args.model, data=args.data, manifest=args.manifest, split=args.split,
                 float_model=args.float_model, size_buckets=args.size_buckets, keep_crops=bool(args.out))
    if args.out:
        write_report(m, args.out)
    if args.json:
        print(json.dumps(public(m)))
    else:
        print_report(m)
        if args.out:
            print(f"report written to {Path(args.out) / 'report.md'}")
    return 0
