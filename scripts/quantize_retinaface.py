"""Make the int8 RetinaFace model: onnxruntime static quantization (QDQ, per-channel), calibrated on scenes.

    python scripts/quantize_retinaface.py --calib ../shared/data/ilc2021-scenes/images \\
        --video ../shared/data/videos/corridor_cctv_1080p.mp4 --out models/face_detection_retinaface_mnet025_int8.onnx

Calibration images are prepared exactly as :class:`maskwatch.detection.retina.RetinaDetector`
prepares a frame (resized to about ``max_pixels``, padded to a multiple of 32 with the mean
colour, mean subtracted), so the activation ranges are the ones the detector will see. The
float graph is first run through ``quant_pre_process`` (shape inference + onnxruntime graph
optimisation, which folds BatchNorm into the convolutions). ``--exclude`` keeps named nodes in
float (for example the first convolution or the heads, when they lose accuracy); ``--list-nodes``
prints the node names to choose from. Calibration images are NOT from facemask-scenes, the
set recall is measured on (benchmarks/face_recall.py).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskwatch.detection.options import RetinaOptions  # noqa: E402
from maskwatch.detection.retina import RETINA_MODEL, RetinaDetector  # noqa: E402
from maskwatch.paths import models_dir  # noqa: E402


def prepared(bgr: np.ndarray, max_pixels: float) -> np.ndarray:
    """The network input the detector makes of ``bgr`` (NCHW float32, mean subtracted)."""
    h, w = bgr.shape[:2]
    scale = min(3.0, (max_pixels / float(w * h)) ** 0.5)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    img = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if nw <= w / 2 else cv2.INTER_LINEAR)
    ph, pw = -nh % 32, -nw % 32
    img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=RetinaDetector.MEAN_BGR)
    return cv2.dnn.blobFromImage(img, 1.0, None, RetinaDetector.MEAN_BGR, swapRB=False, crop=False)


def calibration_frames(image_dir: Path | None, video: Path | None, n_images: int, n_video: int, seed: int) -> list[np.ndarray]:
    frames = []
    if image_dir:
        paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        random.Random(seed).shuffle(paths)
        for p in paths[:n_images]:
            img = cv2.imread(str(p))
            if img is not None:
                frames.append(img)
    if video and n_video:
        cap = cv2.VideoCapture(str(video))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 300
        for i in np.linspace(0, total - 1, n_video).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        cap.release()
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=models_dir() / RETINA_MODEL)
    ap.add_argument("--out", type=Path, default=models_dir() / "face_detection_retinaface_mnet025_int8.onnx")
    ap.add_argument("--calib", type=Path, help="folder of calibration images (not the evaluation set)")
    ap.add_argument("--video", type=Path, help="also calibrate on frames spread over this clip")
    ap.add_argument("--images", type=int, default=150, help="calibration images from --calib")
    ap.add_argument("--video-frames", type=int, default=30, help="calibration frames from --video")
    ap.add_argument("--max-pixels", type=float, default=RetinaOptions().max_pixels)
    ap.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    ap.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    ap.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default: per channel)")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (CPUs without VNNI)")
    ap.add_argument("--exclude", default="", help="comma-separated node names kept in float")
    ap.add_argument("--exclude-first-conv", action="store_true", help="keep the first convolution in float")
    ap.add_argument("--exclude-heads", action="store_true", help="keep the class/box/landmark head convolutions in float")
    ap.add_argument("--list-nodes", action="store_true", help="print the (pre-processed) graph's node names and exit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        # opset 11 has no per-axis DequantizeLinear: move the float graph to opset 13 first
        from onnx import version_converter

        upgraded, pre = Path(tmp) / "opset13.onnx", Path(tmp) / "pre.onnx"
        onnx.save(version_converter.convert_version(onnx.load(str(args.model)), 13), str(upgraded))
        # the exported graph has its BatchNorms folded already: shape inference only (onnxruntime's
        # offline optimisation would write its own domains into the graph's opset list)
        quant_pre_process(str(upgraded), str(pre), skip_optimization=True, skip_symbolic_shape=False)
        graph = onnx.load(str(pre)).graph
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        if args.list_nodes:
            for n in graph.node:
                print(n.op_type, n.name, list(n.output))
            return 0
        exclude = [x for x in args.exclude.split(",") if x]
        if args.exclude_first_conv:
            exclude.append(convs[0])
        if args.exclude_heads:  # the heads: convs whose output feeds (through a reshape/transpose) the outputs
            exclude += [n.name for n in graph.node if n.op_type == "Conv" and any(k in n.name.lower() for k in ("head",))]
        frames = calibration_frames(args.calib, args.video, args.images, args.video_frames, args.seed)
        if not frames:
            ap.error("no calibration frames: give --calib and/or --video")
        blobs = [prepared(f, args.max_pixels) for f in frames]
        args.out.parent.mkdir(parents=True, exist_ok=True)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(blobs)

            def get_next(self):
                blob = next(self._it, None)
                return None if blob is None else {"input": blob}

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[args.method]
        quantize_static(
            str(pre), str(args.out), Reader(),
            quant_format=QuantFormat.QDQ if args.format == "qdq" else QuantFormat.QOperator,
            per_channel=not args.per_tensor, reduce_range=args.reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=method, nodes_to_exclude=exclude,
            extra_options={"CalibMovingAverage": False},
        )
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest}); {len(blobs)} calibration frames, "
          f"{args.format}, {'per-tensor' if args.per_tensor else 'per-channel'}, {args.method}, excluded {exclude or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
