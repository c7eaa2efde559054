"""The ``retina`` mode (the default): RetinaFace with a MobileNet-0.25 backbone.

Trained on WIDER FACE, made for small faces; run through onnxruntime (OpenCV's DNN module when
onnxruntime is missing) on the whole frame resized to about ``max_pixels`` (default 960x540: a
1080p frame runs at half size, a 400x300 photo at 2.1x, never more than ``max_upscale``), anchors
decoded as in the reference implementation and merged by NMS, boxes moved to the face-box
convention the mask classifier was trained on (``calibrate``). It finds faces from ~8 px (input
pixels): on the shared scenes far more small faces than the BlazeFace modes, at ~16 ms a frame on
2 cores (benchmarks/results/face_recall.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from maskwatch.boxes import calibrate_boxes, clipped_faces, nms_indices
from maskwatch.detection.loading import (
    default_threads,
    first_line,
    model_path,
    read_model,
)
from maskwatch.detection.motion import MotionGatedDetector
from maskwatch.detection.options import RetinaOptions
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces

RETINA_MODEL = "face_detection_retinaface_mnet025.onnx"
RETINA_INT8_MODEL = "face_detection_retinaface_mnet025_int8.onnx"
RETINA_MODELS = {"float": RETINA_MODEL, "int8": RETINA_INT8_MODEL}


class RetinaDetector:
    """RetinaFace (MobileNet-0.25, biubug6/Pytorch_Retinaface export) on the resized whole frame.

    The ONNX graph takes a float32 NCHW BGR image minus the mean (104, 117, 123), any size that
    is a multiple of 32, and returns per anchor: box offsets, softmax scores (background, face)
    and five landmark offsets. Anchors: strides 8/16/32 with square sizes 16, 32 / 64, 128 /
    256, 512 input px, centred on each cell; offsets are scaled by variances 0.1 (centre) and 0.2
    (log size), as in the reference ``decode`` / ``decode_landm``.
    """

    STEPS = (8, 16, 32)
    SIZES = ((16, 32), (64, 128), (256, 512))
    VARIANCE = (0.1, 0.2)
    MEAN_BGR = (104.0, 117.0, 123.0)
    MULTIPLE = 32
    # RetinaFace's boxes (WIDER FACE convention) sit higher and are taller than the Pascal VOC face
    # boxes the mask classifier was trained on: centre offset (x, y) in box widths/heights, then
    # width and height factors, medians over 1,704 matched faces of the classifier's training
    # split of facemask-scenes (benchmarks/retina_box_calibration.py). With them the classifier's
    # accuracy on the test split's detected faces went from 0.929 to 0.951 (macro F1 0.766 -> 0.834).
    CALIBRATION = (0.016, 0.125, 1.047, 0.912)

    def __init__(self, options: RetinaOptions, min_score: float, model_dir: Path | None = None):
        self.options = options
        path = model_path(model_dir, RETINA_MODELS[options.weights])
        data = read_model(path)
        self.path = path
        self._min_score, self._nms = min_score, options.nms_iou
        self._max_pixels, self._max_upscale = float(options.max_pixels), float(options.max_upscale)
        self._calibration = self.CALIBRATION if options.calibrate else (0.0, 0.0, 1.0, 1.0)
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self._blob: np.ndarray | None = None  # the network input, reused while the frame size stays
        self._blob_size: tuple[int, int] | None = None
        self._session = self._net = None
        try:
            import onnxruntime as ort
        except ImportError:  # OpenCV's DNN module reads the same graph (slower, ~1.6x)
            ort = None
        try:
            if ort is not None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = options.num_threads or default_threads()
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                # no busy-waiting between runs: spinning pool threads starve the frame resize, the
                # decoder thread and the classifier (a 1080p detect took 29 ms with, 20 ms without)
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
                names = {o.name for o in self._session.get_outputs()}
                if not {"loc", "conf", "landmarks"} <= names or self._session.get_inputs()[0].name != "input":
                    raise ValueError(f"inputs/outputs are not RetinaFace's (outputs {sorted(names)})")
            else:
                self._net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        except Exception as e:
            raise MaskwatchError(f"cannot load face detection model {path}: {first_line(e)[:200]}") from None

    def input_size(self, width: int, height: int) -> tuple[int, int, float]:
        """(resized width, resized height, scale) for a ``width`` x ``height`` frame.

        >>> b = RetinaDetector(RetinaOptions(num_threads=1), 0.5)
        >>> b.input_size(1920, 1080), b.input_size(400, 300)[:2], b.input_size(64, 48)
        ((960, 540, 0.5), (831, 624), (192, 144, 3.0))
        >>> b.close()
        """
        scale = min(self._max_upscale, math.sqrt(self._max_pixels / float(width * height)))
        return max(1, round(width * scale)), max(1, round(height * scale)), scale

    def anchors(self, height: int, width: int) -> np.ndarray:
        """(N, 4) anchors (cx, cy, w, h) in input pixels, in the network's output order."""
        key = (height, width)
        a = self._anchors.get(key)
        if a is None:
            parts = []
            for step, sizes in zip(self.STEPS, self.SIZES):
                ny, nx = math.ceil(height / step), math.ceil(width / step)
                yy, xx = np.mgrid[0:ny, 0:nx]
                centres = np.stack([(xx.ravel() + 0.5) * step, (yy.ravel() + 0.5) * step], axis=1)
                centres = np.repeat(centres, len(sizes), axis=0)
                wh = np.tile(np.repeat(np.asarray(sizes, np.float64)[:, None], 2, axis=1), (ny * nx, 1))
                parts.append(np.hstack([centres, wh]))
            a = np.vstack(parts).astype(np.float32)
            if len(self._anchors) >= 32:  # the motion mode's regions come in a few sizes
                self._anchors.pop(next(iter(self._anchors)))
            self._anchors[key] = a
        return a

    def blob(self, img: np.ndarray) -> np.ndarray:
        """The network input for a BGR image: (1, 3, H, W) float32 minus the mean, padded with
        zeros (the mean colour) to a multiple of 32.

        One OpenCV subtraction per channel plane into the (reused) input array: 0.9 ms for a
        960x540 frame against 4.7-6.7 ms for ``copyMakeBorder`` + ``dnn.blobFromImage``, which
        cProfile showed as the biggest cost after the network itself (docs/detection-speed.md).

        >>> b = RetinaDetector(RetinaOptions(num_threads=1), 0.5)
        >>> x = b.blob(np.full((30, 40, 3), (104, 117, 123), np.uint8))
        >>> x.shape, float(np.abs(x).max())
        ((1, 3, 32, 64), 0.0)
        >>> b.close()
        """
        nh, nw = img.shape[:2]
        shape = (1, 3, nh + (-nh % self.MULTIPLE), nw + (-nw % self.MULTIPLE))
        if self._blob is None or self._blob.shape != shape or self._blob_size != (nh, nw):
            self._blob, self._blob_size = np.zeros(shape, np.float32), (nh, nw)  # padding stays 0 between calls
        for c, plane in enumerate(cv2.split(img)):
            cv2.subtract(plane, self.MEAN_BGR[c], dst=self._blob[0, c, :nh, :nw], dtype=cv2.CV_32F)
        return self._blob

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        nw, nh, _ = self.input_size(w, h)
        return self.detect_resized(bgr, nw, nh)

    def detect_at(self, bgr: np.ndarray, scale: float) -> Faces:
        """Faces in ``bgr`` run at ``scale`` times its size (not ``max_pixels``'s): the motion mode's
        regions, which run at a higher scale than the whole frame."""
        h, w = bgr.shape[:2]
        return self.detect_resized(bgr, max(1, round(w * scale)), max(1, round(h * scale)))

    def detect_resized(self, bgr: np.ndarray, nw: int, nh: int) -> Faces:
        """Faces in ``bgr`` with the network run on it resized to ``nw`` x ``nh``, in ``bgr``'s pixels."""
        h, w = bgr.shape[:2]
        # INTER_AREA only for big reductions (4K -> 960x540), where bilinear would alias small faces
        # away; it is slow for other ratios (4.5 ms vs 0.5 ms for 1080p -> 964x542)
        interp = cv2.INTER_AREA if nw <= w / 2 else cv2.INTER_LINEAR
        img = cv2.resize(bgr, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else bgr
        blob = self.blob(img)
        if self._session is not None:
            loc, conf, landm = self._session.run(["loc", "conf", "landmarks"], {"input": blob})
        else:
            self._net.setInput(blob)
            loc, conf, landm = self._net.forward(["loc", "conf", "landmarks"])
        anchors = self.anchors(*blob.shape[2:])
        if loc.shape[1] != len(anchors):
            raise MaskwatchError(f"face detection model {self.path} gave {loc.shape[1]} anchors, expected {len(anchors)}")
        score = conf[0, :, 1]
        keep = np.flatnonzero(score >= self._min_score)
        if not len(keep):
            return clipped_faces([], [], [], w, h)
        a, loc, landm, score = anchors[keep], loc[0, keep], landm[0, keep], score[keep]
        v0, v1 = self.VARIANCE
        centre = a[:, :2] + loc[:, :2] * v0 * a[:, 2:]
        size = a[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.hstack([centre - size / 2, centre + size / 2])
        kps = a[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * a[:, None, 2:]
        idx = nms_indices(xyxy[:, :2], size, score, self._min_score, self._nms)
        sx, sy = nw / w, nh / h
        xyxy = calibrate_boxes(xyxy[idx], self._calibration) / np.array([sx, sy, sx, sy], np.float32)
        kps = kps[idx] / np.array([sx, sy], np.float32)
        return clipped_faces(xyxy, score[idx], kps, w, h)

    def close(self) -> None:
        self._session = self._net = None
        self._blob = None
        self._anchors.clear()


def retina_backend(options: RetinaOptions, min_score: float, model_dir: Path | None = None):
    """The ``retina`` mode's back-end: :class:`RetinaDetector`, motion-gated when ``options.motion``."""
    detector = RetinaDetector(options, min_score, model_dir)
    if not options.motion:
        return detector
    return MotionGatedDetector(detector, full_every=options.full_every, region_scale=options.region_scale,
                               width=options.motion_width, max_pixels=options.max_pixels)
