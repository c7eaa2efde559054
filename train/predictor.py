"""The classifier being evaluated: :class:`Predictor` over an int8 ``.tflite`` (the app's own
:class:`maskwatch.classification.MaskClassifier`, so the numbers are what the app gets) or a float
``.keras`` model with its metadata (:func:`load_predictor`). :mod:`train.evaluate` re-exports these."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.classification import apply_temperature
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.evaluate")


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
