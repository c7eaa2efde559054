"""Each built-in detector mode's options: defaults, one-line help, allowed values, default ``min_score``.

Kept apart from the back-ends (which need numpy, OpenCV and a model runtime) so that the
configuration, the CLI's ``--help`` and the GUI's mode list read them without loading a model.
The back-end that uses each class is named in :mod:`maskwatch.detection.registry`.

>>> RetinaOptions().max_pixels, DenseOptions.default_min_score, TiledOptions.names()[:3]
(518400, 0.6, ('tile', 'overlap', 'max_tiles'))
>>> DenseOptions(scales=[1, 2]).scales   # one number or a list of them; stored as a tuple
(1.0, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from maskwatch.detection.base import DetectorOptions, option

_NMS_HELP = "a box overlapping a better one by this IoU is merged into it"
_THREADS_HELP = "inference threads (0 or unset: up to 2)"
_EYE_MOUTH_HELP = "drop faces whose mouth keypoint is less than this many box widths below the eyes (0: off)"


@dataclass(frozen=True)
class RetinaOptions(DetectorOptions):
    mode = "retina"
    title = "RetinaFace"
    help = "small faces in CCTV and crowds"
    # 0.7: on the shared scenes it keeps recall 0.826 (0.879 for 16-32 px faces) with 0.33 unmatched
    # boxes per image, against 0.870 / 0.62 at 0.5 (benchmarks/results/face_recall.md)
    default_min_score = 0.7

    max_pixels: float = option(960 * 540, "the frame is resized to about this many pixels (1080p runs at half size)", gt=0)
    max_upscale: float = option(3.0, "a small frame is enlarged at most this much", gt=0)
    nms_iou: float = option(0.4, _NMS_HELP, gt=0, le=1)
    num_threads: int | None = option(None, _THREADS_HELP, ge=0)
    calibrate: bool = option(True, "move boxes to the face-box convention the mask classifier was trained on")
    weights: str = option("float", "float32 network or its int8 quantization (scripts/quantize_retinaface.py)",
                          choices=("float", "int8"))
    # motion gating (maskwatch.detection.motion): fixed cameras only
    # unset: on for video (the pipeline builds its detector with video=True), off for photos, where
    # one image has nothing to do with the next (benchmarks/results/detector_e2e.md)
    motion: bool | None = option(None, "fixed camera: run the detector only where the picture moved, the whole "
                                       "frame every full_every frames (unset: on for video, off for photos)")
    full_every: int = option(5, "with motion: a whole-frame pass every this many frames (people who stand still)", ge=1)
    region_scale: float = option(1.0, "with motion: moving regions run at this scale of the frame (1080p's whole frame runs at 0.5)", gt=0, le=4)
    motion_width: int = option(320, "with motion: width in px of the grey frame the background subtractor sees", ge=32)


@dataclass(frozen=True)
class ShortOptions(DetectorOptions):
    mode = "short"
    title = "short range"
    help = "webcams, faces close to the camera (fastest)"
    default_min_score = 0.5

    nms_iou: float = option(0.3, _NMS_HELP, gt=0, le=1)


@dataclass(frozen=True)
class FullOptions(DetectorOptions):
    mode = "full"
    title = "full range"
    help = "CCTV, faces a few metres away"
    default_min_score = 0.5

    nms_iou: float = option(0.3, _NMS_HELP, gt=0, le=1)


@dataclass(frozen=True)
class DenseOptions(DetectorOptions):
    mode = "dense"
    title = "dense"
    help = "small faces anywhere in large frames"
    default_min_score = 0.6

    scales: tuple[float, ...] = option((1.0, 0.5), "resize factors, one network pass each (the first kept within max_pixels)", gt=0)
    max_pixels: float = option(640 * 384, "the first scale's input has at most this many pixels", gt=0)
    nms_iou: float = option(0.3, _NMS_HELP, gt=0, le=1)
    num_threads: int | None = option(None, _THREADS_HELP, ge=0)
    min_eye_mouth: float = option(0.28, _EYE_MOUTH_HELP, ge=0)
    confirm_px: float = option(48, "a fine level's faces this wide (input px) must show on the coarse level too (0: off)", ge=0)


@dataclass(frozen=True)
class TiledOptions(DetectorOptions):
    mode = "tiled"
    title = "tiled"
    help = "smallest faces, slowest"
    default_min_score = 0.6

    tile: int = option(128, "tile side in px (grown until there are at most max_tiles)", ge=16)
    overlap: float = option(0.25, "share of a tile that overlaps its neighbour", ge=0, lt=1)
    max_tiles: int = option(24, "most tiles per frame", ge=1)
    nms_iou: float = option(0.3, _NMS_HELP, gt=0, le=1)
    num_threads: int | None = option(None, _THREADS_HELP, ge=0)
    whole: str = option("dense", "the whole-frame pass: dense (multi-scale short range) or full (letterboxed full range)",
                        choices=("dense", "full"))
    min_eye_mouth: float = option(0.28, _EYE_MOUTH_HELP, ge=0)
