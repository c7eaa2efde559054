"""``MaskClassifier``: the int8 TFLite mask classifier and its metadata.

The model file (``models/mask_classifier.tflite``) comes with a JSON next to it
(``mask_classifier.json``) that names the labels, input size, crop margin and version. Crops are
cut with :func:`maskwatch.crop.crop_faces`, the same function ``train/`` uses, so training and
serving see identical pixels.

Example (needs the shipped model)::

    clf = MaskClassifier()
    probs = clf.classify_faces(frame_bgr, faces.xyxy)   # (N, 3) in clf.labels order

The probabilities are *calibrated*: the metadata's ``temperature`` (fitted on validation faces by
``maskwatch-train export``, see ``train/calibration.py``) is applied to every output, so the vote,
the alerts, the review loop and ``detect --json`` read probabilities whose confidence means what
it says. A model without the field keeps its raw outputs bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.crop import crop_faces
from maskwatch.errors import MaskwatchError
from maskwatch.paths import models_dir
from maskwatch.sources.spec import display_path as _shown

log = logging.getLogger("maskwatch.classification")

DEFAULT_MODEL = "mask_classifier.tflite"

PROB_FLOOR = 0.5 / 256
"""Smallest probability a temperature sees: half the step of the int8 model's uint8 softmax output
(scale 1/256), so a quantised 0 stands for "under half a step" and its log stays finite. The same
floor is used to fit the temperature (``train.calibration``) and to apply it here."""


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log p / T)`` (rows of ``probs`` sum to 1).

    The model outputs probabilities, not logits (the int8 TFLite ends in its softmax); ``log p``
    equals the logits up to a per-row constant, which the softmax cancels, so this is exactly
    temperature scaling of the logits (with ``p`` floored at :data:`PROB_FLOOR`). ``T > 1``
    softens over-confident outputs; the arg-max never changes. ``T == 1`` returns ``probs`` itself.

    >>> p = np.array([[0.8, 0.15, 0.05]], np.float32)
    >>> apply_temperature(p, 1.0) is p
    True
    >>> np.round(apply_temperature(p, 2.0), 3)
    array([[0.594, 0.257, 0.149]], dtype=float32)
    >>> round(float(apply_temperature(p, 2.0).sum()), 6)
    1.0
    """
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(np.asarray(probs, np.float64), PROB_FLOOR, 1.0)) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _interpreter_class():
    """ai-edge-litert (maintained), then tflite-runtime, then TensorFlow's own interpreter."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # type: ignore

        return tf.lite.Interpreter, "tensorflow"
    except ImportError:
        raise MaskwatchError(
            "no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


def load_metadata(model_path: Path) -> dict:
    """Read and check the JSON next to ``model_path``.

    Every problem is one ``MaskwatchError`` line naming the file and the field (exit 2): the file
    must be a JSON object with ``labels`` (exactly :data:`maskwatch.LABELS`), ``input_size`` (two
    equal integers >= 1), ``crop_margin`` (a number >= 0) and ``version`` (text or a number);
    ``temperature`` is optional (a number > 0; 1.0 when absent).
    """
    meta_path = model_path.with_suffix(".json")
    shown = _shown(meta_path)
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise MaskwatchError(f"model metadata not found: {shown} (it must sit next to the .tflite)") from None
    except OSError as e:
        raise MaskwatchError(f"cannot read model metadata {shown}: {(e.strerror or str(e)).lower()}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"model metadata {shown} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise MaskwatchError(f"model metadata {shown} must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in ("labels", "input_size", "crop_margin", "version") if k not in meta]
    if missing:
        raise MaskwatchError(f"model metadata {shown} lacks {', '.join(missing)}")

    def bad(field: str, wanted: str):
        value = json.dumps(meta[field])
        value = value if len(value) <= 60 else value[:57] + "..."
        return MaskwatchError(f"model metadata {shown}: {field} must be {wanted}, got {value}")

    if not isinstance(meta["labels"], list) or meta["labels"] != list(LABELS):
        raise bad("labels", json.dumps(list(LABELS)))
    size = meta["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 1 for v in size)
            and size[0] == size[1]):
        raise bad("input_size", "two equal integers >= 1 (a square input, [h, w])")
    margin = meta["crop_margin"]
    if not (_is_number(margin) and margin >= 0):
        raise bad("crop_margin", "a number >= 0")
    if not (isinstance(meta["version"], str) or _is_number(meta["version"])):
        raise bad("version", "text or a number")
    if "temperature" in meta and not (_is_number(meta["temperature"]) and meta["temperature"] > 0):
        raise bad("temperature", "a number > 0 (fitted by maskwatch-train export; 1.0 = uncalibrated)")
    return meta


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex): what identifies a model, whatever its file is called."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """Which mask classifier is in use: written in the logs' metadata, shown in the app.

    ``name`` is the metadata's ``name`` (the file's stem when it has none), ``sha256`` the model
    file's hash (a fine-tuned model keeps the name and may keep the version; its hash differs),
    ``path`` where it was loaded from (show it with :meth:`short_path`: never a whole home folder
    in a log), ``margin`` / ``input_size`` its crop.

    >>> info = ModelInfo("mask_classifier", "0.4.0", "0123456789abcdef", Path("/x/mask_classifier.tflite"), 0.2, 96)
    >>> info.describe()
    'mask_classifier 0.4.0 (sha256 01234567)'
    >>> info.short_path()
    'x/mask_classifier.tflite'
    """

    name: str
    version: str
    sha256: str
    path: Path
    margin: float
    input_size: int

    def describe(self) -> str:
        return f"{self.name} {self.version} (sha256 {self.sha256[:8]})"

    def short_path(self) -> str:
        """The model's folder and file name only (``run3/mask_classifier.tflite``)."""
        parts = Path(self.path).parts[-2:]
        return _shown(Path(*parts)) if parts else ""


def model_info(model_path: str | Path, metadata: dict | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a model file, from its metadata and its bytes (the model itself
    is not loaded: :class:`MaskClassifier` checks that it runs)."""
    model_path = Path(model_path)
    meta = load_metadata(model_path) if metadata is None else metadata
    try:
        sha = file_sha256(model_path)
    except OSError as e:
        raise MaskwatchError(f"cannot read model {_shown(model_path)}: {(e.strerror or str(e)).lower()}") from None
    return ModelInfo(
        name=str(meta.get("name") or model_path.stem),
        version=str(meta["version"]),
        sha256=sha,
        path=model_path,
        margin=float(meta["crop_margin"]),
        input_size=int(meta["input_size"][0]),
    )


class MaskClassifier:
    """Classifies face crops as with_mask / without_mask / mask_worn_incorrectly.

    Accepts full-integer (uint8/int8 in and out) and float32 TFLite models; quantised tensors are
    (de)quantised with their own scale and zero point. ``temperature`` (from the metadata, 1.0 when
    absent) calibrates every probability :meth:`classify` returns (:func:`apply_temperature`).
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = 1):
        self.model_path = Path(model_path) if model_path else models_dir() / DEFAULT_MODEL
        if not self.model_path.is_file():
            raise MaskwatchError(f"model file not found: {_shown(self.model_path)}")
        self.metadata = load_metadata(self.model_path)
        self.labels: tuple[str, ...] = tuple(self.metadata["labels"])
        h, w = (int(v) for v in self.metadata["input_size"])  # checked: equal integers
        self.input_size = h
        self.margin = float(self.metadata["crop_margin"])
        self.version = str(self.metadata["version"])
        self.temperature = float(self.metadata.get("temperature", 1.0))  # checked: a number > 0
        Interpreter, self.runtime = _interpreter_class()
        try:
            try:
                str(self.model_path).encode("utf-8")
                source = {"model_path": str(self.model_path)}
            except UnicodeEncodeError:  # a name that is not UTF-8: hand the runtime the bytes instead
                source = {"model_content": self.model_path.read_bytes()}
            self._interp = Interpreter(**source, num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise MaskwatchError(f"cannot load model {_shown(self.model_path)}: {str(e).splitlines()[0]}") from None
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = inp["dtype"], out["dtype"]
        self._in_q, self._out_q = inp["quantization"], out["quantization"]
        if tuple(inp["shape"][1:]) != (h, w, 3):
            raise MaskwatchError(
                f"model {_shown(self.model_path)} takes input {tuple(inp['shape'][1:])}, metadata says {(h, w, 3)}"
            )
        if int(out["shape"][-1]) != len(LABELS):
            raise MaskwatchError(f"model {_shown(self.model_path)} has {out['shape'][-1]} outputs, expected {len(LABELS)}")
        self._batch = int(inp["shape"][0])
        self.info = model_info(self.model_path, self.metadata)

    def _quantize_input(self, crops: np.ndarray) -> np.ndarray:
        if self._in_dtype == np.float32:
            return crops.astype(np.float32)
        scale, zero = self._in_q
        if self._in_dtype == np.uint8 and scale in (0.0, 1.0) and zero == 0:
            return crops  # the normal case: raw RGB pixels, normalisation inside the model
        q = np.round(crops.astype(np.float32) / (scale or 1.0) + zero)
        info = np.iinfo(self._in_dtype)
        return np.clip(q, info.min, info.max).astype(self._in_dtype)

    def _dequantize_output(self, out: np.ndarray) -> np.ndarray:
        if self._out_dtype == np.float32:
            return out
        scale, zero = self._out_q
        return (out.astype(np.float32) - zero) * scale

    def classify(self, crops: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """RGB uint8 crops (N, S, S, 3) at ``input_size`` -> probabilities (N, 3) in ``labels`` order.

        ``calibrated=False`` gives the model's raw outputs (before :attr:`temperature`), which is
        what a calibration is fitted and measured on."""
        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if crops.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"crops must be (N, {self.input_size}, {self.input_size}, 3), got {crops.shape}")
        if n != self._batch:
            self._interp.resize_tensor_input(self._in_index, [n, self.input_size, self.input_size, 3])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in_index, self._quantize_input(crops))
        self._interp.invoke()
        probs = self._dequantize_output(self._interp.get_tensor(self._out_index)).astype(np.float32)
        probs = np.clip(probs, 0.0, None)
        total = probs.sum(axis=1, keepdims=True)
        probs = np.divide(probs, total, out=np.full_like(probs, 1.0 / probs.shape[1]), where=total > 0)
        return apply_temperature(probs, self.temperature) if calibrated else probs

    def crop(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """The model's crops of ``xyxy`` boxes in a BGR frame (RGB uint8)."""
        return crop_faces(image_bgr, xyxy, self.input_size, self.margin, bgr=True)

    def classify_faces(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Crop the boxes from a BGR frame and classify them in one batch -> (N, 3)."""
        return self.classify(self.crop(image_bgr, xyxy))
