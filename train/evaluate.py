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
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.classification import apply_temperature
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.evaluate")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
WIDTH_BUCKETS = ((0.0, 16.0, "<16"), (16.0, 32.0, "16-32"), (32.0, 64.0, "32-64"), (64.0, float("inf"), ">=64"))
"""Face-width buckets in source pixels: [lo, hi)."""
LOWRES_WIDTHS = (16, 24, 32)
"""Face widths (px) of the low-res slice."""
MAX_MISTAKES = 24
"""Most confident mistakes listed in the metrics and drawn in ``mistakes.png``."""
MASK, NO_MASK, INCORRECT = (LABELS.index(k) for k in ("with_mask", "without_mask", "mask_worn_incorrectly"))


# ---------------------------------------------------------------- models

@dataclass
class Predictor:
    """A loaded classifier: ``predict(RGB uint8 (N, S, S, 3)) -> probabilities (N, 3)`` in LABELS order."""

    path: Path
    kind: str                     # "tflite" or "keras"
    input_size: int
    margin: float
    metadata: dict = field(default_factory=dict)
    _impl: object = None
    temperature: float = 1.0      # the metadata's calibration temperature, applied by predict()

    @property
    def name(self) -> str:
        return f"{self.path.name} ({'int8 TFLite' if self.kind == 'tflite' else 'float Keras'})"

    def predict(self, x: np.ndarray, batch_size: int = 64, calibrated: bool = True) -> np.ndarray:
        """Probabilities as the app reads them (``temperature`` applied); ``calibrated=False``: raw."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"expected (N, {self.input_size}, {self.input_size}, 3) crops, got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        if self.kind == "tflite":
            return np.concatenate([self._impl.classify(x[i:i + batch_size], calibrated=calibrated)
                                   for i in range(0, len(x), batch_size)])
        out = np.asarray(self._impl.predict(x.astype(np.float32), batch_size=batch_size, verbose=0), np.float32)
        return apply_temperature(out, self.temperature) if calibrated else out


def load_keras_model(path: str | Path):
    """``keras.models.load_model`` without compiling; falls back to unsafe mode for Lambda layers
    (the ResNet50 normalisation) — only for model files you made yourself."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"model file not found: {path}")
    try:
        return keras.models.load_model(path, compile=False)
    except ValueError as e:
        if "safe_mode" not in str(e) and "Lambda" not in str(e):
            raise MaskwatchError(f"cannot load Keras model {path}: {str(e).splitlines()[0][:200]}") from None
        log.warning("%s has a Lambda layer; loading it with safe_mode=False", path)
        return keras.models.load_model(path, compile=False, safe_mode=False)
    except Exception as e:  # zip/h5 errors for corrupt files
        raise MaskwatchError(f"cannot load Keras model {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") \
            from None


def _keras_metadata(path: Path) -> dict:
    """The metadata JSON next to a ``.keras`` (same stem), or a fit run's ``config.json``; {} if none."""
    for cand in (path.with_suffix(".json"), path.parent / "config.json"):
        if cand.is_file():
            try:
                meta = json.loads(cand.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise MaskwatchError(f"model metadata {cand} is not valid JSON: {e}") from None
            if "labels" in meta and list(meta["labels"]) != list(LABELS):
                raise MaskwatchError(f"model metadata {cand} has labels {meta['labels']}, expected {list(LABELS)}")
            if cand.name == "config.json":  # a fit run folder: {"margin": ..., "input_size": ...}
                meta = {"crop_margin": meta.get("margin", DEFAULT_MARGIN), "backbone": meta.get("backbone")}
            return meta
    return {}


def load_predictor(path: str | Path, num_threads: int | None = 1) -> Predictor:
    """Load ``.tflite`` (with the app's ``MaskClassifier``, ``num_threads`` as the app: 1; needs the
    metadata JSON) or ``.keras``."""
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from maskwatch.classification import MaskClassifier

        clf = MaskClassifier(path, num_threads=num_threads)
        return Predictor(path, "tflite", clf.input_size, clf.margin, clf.metadata, clf, clf.temperature)
    if suffix in (".keras", ".h5"):
        model = load_keras_model(path)
        shape = model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or shape[1] is None:
            raise MaskwatchError(f"model {path} takes input {shape[1:]}, expected a square RGB image")
        if model.output_shape[-1] != len(LABELS):
            raise MaskwatchError(f"model {path} has {model.output_shape[-1]} outputs, expected {len(LABELS)}")
        meta = _keras_metadata(path)
        margin = float(meta.get("crop_margin", DEFAULT_MARGIN))
        temperature = meta.get("temperature", 1.0)
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and np.isfinite(temperature) and temperature > 0):
            raise MaskwatchError(f"model metadata of {path}: temperature must be a number > 0, got {temperature!r}")
        return Predictor(path, "keras", int(shape[1]), margin, meta, model, float(temperature))
    raise MaskwatchError(f"unsupported model file {path}: expected .tflite or .keras")


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


# ---------------------------------------------------------------- reports

def _fmt(v, pct=False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if pct else f"{v:.3f}"
    return str(v)


def report_markdown(m: dict) -> str:
    """A readable markdown report of :func:`evaluate`'s result."""
    lines = [f"# Evaluation of `{Path(m['model']).name}`", "",
             f"- model: `{m['model']}` ({m['model_kind']}, input {m['input_size']} px)",
             f"- data: `{m['data']}` — {m['n']} faces" + (f", {m['skipped_unreadable']} unreadable skipped"
                                                         if m.get("skipped_unreadable") else ""),
             f"- accuracy **{_fmt(m['accuracy'])}**, macro F1 **{_fmt(m['macro_f1'])}**, "
             f"mask_worn_incorrectly recall **{_fmt(m['incorrect_recall'])}**",
             f"- 2-class (mask / no mask, {m['two_class']['n']} faces): accuracy {_fmt(m['two_class']['accuracy'])} "
             f"(p(with_mask) vs p(without_mask)), strict 3-class {_fmt(m['two_class']['accuracy_strict'])}", "",
             "## Per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, r in m["per_class"].items():
        lines.append(f"| {lab} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1-score'])} | {r['support']} |")
    cm = m["confusion_matrix"]
    lines += ["", "## Confusion matrix (rows true, columns predicted)", "",
              "| true \\ predicted | " + " | ".join(cm["labels"]) + " |", "|---" * (len(cm["labels"]) + 1) + "|"]
    for lab, row in zip(cm["labels"], cm["matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    if "calibration" in m:
        lines += ["", *calibration_markdown(m["calibration"])]
    if "by_face_width" in m:
        lines += ["", f"## By face width (px; {m['face_width_source']})", "",
                  "Macro F1 averages the classes present in the bucket; recall per class with its support.", "",
                  "| face width | n | accuracy | macro F1 | " + " | ".join(f"recall {lab}" for lab in LABELS) + " |",
                  "|---|---|---|---|" + "---|" * len(LABELS)]
        for r in m["by_face_width"]:
            rec = [f"{_fmt(r['recall'][lab])} ({r['support'][lab]})" if r.get("recall") else "–" for lab in LABELS]
            lines.append(f"| {r['bucket']} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                         + " | ".join(rec) + " |")
    if "by_source" in m:
        lines += ["", "## By source dataset", "", "| source | n | accuracy | macro F1 | "
                  + " | ".join(f"n {lab}" for lab in LABELS) + " |", "|---|---|---|---|" + "---|" * len(LABELS)]
        lines += [f"| {r['source']} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                  + " | ".join(str(r["support"][lab]) for lab in LABELS) + " |" for r in m["by_source"]]
    if "lowres" in m:
        lines += ["", "## Low-res slice (every face shrunk to N px wide, enlarged back as the app does)", "",
                  "| face width | crop side | accuracy | macro F1 |", "|---|---|---|---|"]
        lines += [f"| {r['face_px']} px | {r['crop_side']} px | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |"
                  for r in m["lowres"]]
    if "float_vs_int8" in m:
        f = m["float_vs_int8"]
        lines += ["", f"## Float vs int8 (same {f['n']} faces)", "", "| model | accuracy | macro F1 |", "|---|---|---|"]
        lines += [f"| {r['model']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |" for r in f["models"]]
        lines += ["", f"Prediction agreement: **{_fmt(f['agreement'], pct=True)}**; "
                      f"largest probability difference {_fmt(f['max_abs_prob_diff'])}."]
    return "\n".join(lines) + "\n"


def calibration_markdown(c: dict) -> list[str]:
    """The calibration section of the report: ECE of the raw, the model's and the val-fitted probabilities."""
    lines = [f"## Calibration (expected calibration error, {c['bins']} equal-width bins of the top probability)", "",
             "| probabilities | temperature | ECE |", "|---|---|---|",
             f"| raw model outputs | 1 | {_fmt(c['ece_before'])} |"]
    if c["model_temperature"] != 1.0:
        lines.append(f"| with the model's metadata temperature (what the app reads) | {c['model_temperature']:.3f} | "
                     f"{_fmt(c['ece_model'])} |")
    if c.get("temperature") is not None:
        where = f"fitted on {c['fitted_on']} ({c['n_fit']} faces" + (", the same faces: in-sample" if c["in_sample"]
                                                                      else "") + ")"
        lines.append(f"| {where} | {c['temperature']:.3f} | {_fmt(c['ece_after'])} |")
    else:
        lines.append("| fitted on a val split | – (no val split: ImageFolder data or empty val) | – |")
    return lines


def save_confusion_matrix(m: dict, path: str | Path) -> Path:
    """Confusion-matrix PNG (counts, and row-normalised colour) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(m["confusion_matrix"]["matrix"], np.float64)
    labels = m["confusion_matrix"]["labels"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=120)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}\n{100 * norm[i, j]:.0f}%", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    short = [lab.replace("mask_worn_incorrectly", "incorrect").replace("_", " ") for lab in labels]
    ax.set_xticks(range(len(labels)), short)
    ax.set_yticks(range(len(labels)), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{Path(m['model']).name}: acc {_fmt(m['accuracy'])}, macro F1 {_fmt(m['macro_f1'])}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def public(m: dict) -> dict:
    """The metrics without private (``_``-prefixed) entries such as crops: what goes to JSON."""
    return {k: v for k, v in m.items() if not k.startswith("_")}


def save_mistakes(m: dict, crops: np.ndarray, path: str | Path) -> Path:
    """Grid of the most confident mistakes: crop, ``true -> predicted p``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(crops)
    cols = min(8, max(1, n))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.65 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    short = {lab: lab.replace("mask_worn_incorrectly", "incorrect").replace("_mask", "").replace("_", " ")
             for lab in LABELS}
    for ax, crop, mk in zip(axes.flat, crops, m["mistakes"]):
        ax.imshow(crop)
        ax.set_title(f"{short[mk['true']]}→{short[mk['predicted']]} {mk['p']:.2f}", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(m: dict, out_dir: str | Path) -> Path:
    """``report.md``, ``metrics.json``, ``confusion_matrix.png`` (and ``mistakes.png``) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(public(m), indent=2))
    save_confusion_matrix(m, out / "confusion_matrix.png")
    md = report_markdown(m) + "\n![confusion matrix](confusion_matrix.png)\n"
    if m.get("_reliability") is not None and "calibration" in m:
        from train.calibration import save_reliability_diagram

        c = m["calibration"]
        t = c["temperature"] if c.get("temperature") is not None else c["model_temperature"]
        save_reliability_diagram(*m["_reliability"], out / "reliability.png", temperature=t,
                                 title=f"{Path(m['model']).name} on {m['n']} faces")
        md += "\n![reliability diagram](reliability.png)\n"
    crops = m.get("_mistake_crops")
    if m.get("mistakes") and crops is not None and len(crops):
        save_mistakes(m, crops, out / "mistakes.png")
        md += (f"\n## Most confident mistakes ({len(crops)} shown, true → predicted, p)\n\n"
               "![mistakes](mistakes.png)\n")
    (out / "report.md").write_text(md)
    return out


def print_report(m: dict) -> None:
    """Readable terminal report (rich tables)."""
    from rich.console import Console
    from rich.markup import escape   # "runs/pool [test]" is text, not a style tag
    from rich.table import Table

    con = Console()

    def table(title: str, columns, rows, left_first: bool = False) -> None:
        t = Table(title=title)
        for k, c in enumerate(columns):
            t.add_column(c, justify="left" if left_first and k == 0 else "right")
        for row in rows:
            t.add_row(*row)
        con.print(t)

    con.print(f"[bold]{escape(Path(m['model']).name)}[/] ({m['model_kind']}, {m['input_size']} px) on {escape(m['data'])}: "
              f"{m['n']} faces" + (f", {m['skipped_unreadable']} unreadable skipped" if m.get("skipped_unreadable") else ""))
    table(f"accuracy {_fmt(m['accuracy'])} · macro F1 {_fmt(m['macro_f1'])} · "
          f"2-class accuracy {_fmt(m['two_class']['accuracy'])}",
          ("class", "precision", "recall", "F1", "support"),
          ((lab, _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1-score"]), str(r["support"]))
           for lab, r in m["per_class"].items()),
          left_first=True)
    cm = m["confusion_matrix"]
    table("confusion matrix (rows true, columns predicted)", ("true \\ pred", *cm["labels"]),
          ((lab, *map(str, row)) for lab, row in zip(cm["labels"], cm["matrix"])), left_first=True)
    if "calibration" in m:
        c = m["calibration"]
        after = (f"; T {c['temperature']:.3f} fitted on {c['fitted_on']}"
                 + (" (in-sample)" if c["in_sample"] else "") + f": {_fmt(c['ece_after'])}"
                 if c.get("temperature") is not None else "")
        model_t = f"; with the model's T {c['model_temperature']:.3f}: {_fmt(c['ece_model'])}" \
            if c["model_temperature"] != 1.0 else ""
        con.print(escape(f"expected calibration error: raw {_fmt(c['ece_before'])}{model_t}{after}"))
    if "by_face_width" in m:
        table(f"by face width ({m['face_width_source']})", ("face width", "n", "accuracy", "macro F1"),
              ((r["bucket"], str(r["n"]), _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["by_face_width"]))
    if "by_source" in m:
        table("by source dataset", ("source", "n", "accuracy", "macro F1"),
              ((r["source"], str(r["n"]), _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["by_source"]))
    if "lowres" in m:
        table("low-res slice (faces shrunk to N px and enlarged back)", ("face width", "accuracy", "macro F1"),
              ((f"{r['face_px']} px", _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["lowres"]))
    if "float_vs_int8" in m:
        f = m["float_vs_int8"]
        table(f"float vs int8: agreement {_fmt(f['agreement'], pct=True)}", ("model", "accuracy", "macro F1"),
              ((r["model"], _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in f["models"]))


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
