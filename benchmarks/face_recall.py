"""Face recall of each FaceDetector mode on Pascal-VOC scenes, and its speed on a video.

    python benchmarks/face_recall.py --data ../shared/data/facemask-scenes --modes short,full,dense,tiled
    python benchmarks/face_recall.py --data ../shared/data/facemask-scenes --modes "dense:scale=2.5" --limit 100
    python benchmarks/face_recall.py --video ../shared/data/videos/corridor_cctv_1080p.mp4 --modes short,dense
    python benchmarks/face_recall.py --data ../shared/data/facemask-scenes --modes retina --min-score 0.7 --fp-montage /tmp/fp.png
    python benchmarks/face_recall.py --video ../shared/data/videos/corridor_cctv_1080p.mp4 --modes retina --streams 1,2,4

A mode is ``NAME`` or ``NAME:key=value,key=value`` with the options of
the mode's options class (``maskwatch.detection.options``); a tuple value is written ``a|b`` (``dense:scales=1|2.5``).
A detection matches a ground-truth face when their IoU is >= ``--iou`` (0.3), one to one
(Hungarian assignment on IoU). Recall is reported overall, by ground-truth face width (<16,
16-32, 32-64, >=64 px) and by class; precision is matched detections / all detections and
FP/img the unmatched detections per image. ``ms/img`` times ``FaceDetector.detect`` only. On
``--video`` the detector is built as the pipeline builds it (``video=True``: ``retina`` gates on
motion unless ``retina:motion=False``); on still images it never gates.
``--streams 1,2,4`` also runs the whole pipeline (default configuration, each mode in turn) on N
copies of ``--video`` at once (each mode at its default ``min_score``), one process each (``maskwatch.bench.run_streams``, the same as
``maskwatch bench --streams N``): aggregate fps and each stream's capture-to-label latency.
``--fp-montage`` writes a grid of the first mode's unmatched detections (score and width printed
on each), to see by eye what they are: non-faces, or faces the annotations leave out. Keep that
image out of the repository (it is made of the dataset's pixels).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskwatch.crop import crop_face  # noqa: E402
from maskwatch.detection import FaceDetector, box_iou  # noqa: E402

BUCKETS = (("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), (">=64", 64, float("inf")))
CLASS_NAMES = {"mask_weared_incorrect": "mask_worn_incorrectly"}
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_modes(text: str) -> list[tuple[str, str, dict]]:
    """``"short,dense:scale=2;tiled:tile=160,overlap=0.2"`` -> [(label, mode, options)]."""
    sep = ";" if ";" in text else None
    items = text.split(sep) if sep else _split_commas(text)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, rest = item.partition(":")
        opts = {}
        for kv in filter(None, rest.split(",")):
            k, _, v = kv.partition("=")
            values = [_value(x) for x in v.split("|")]
            opts[k.strip()] = tuple(values) if "|" in v else values[0]
        out.append((item, name.strip(), opts))
    return out


def _value(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _split_commas(text: str) -> list[str]:
    """Split on commas that start a new mode (a comma followed by ``name`` without ``=``)."""
    parts, cur = [], ""
    for piece in text.split(","):
        if cur and "=" not in piece.split(":")[0]:
            parts.append(cur)
            cur = piece
        else:
            cur = f"{cur},{piece}" if cur else piece
    if cur:
        parts.append(cur)
    return parts


def load_voc(data: Path, limit: int | None) -> list[tuple[Path, np.ndarray, list[str]]]:
    """[(image path, gt boxes (N,4), class names)] for every annotation with an image."""
    ann_dir, img_dir = data / "annotations", data / "images"
    items = []
    for xml in sorted(ann_dir.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
        image = next((img_dir / f"{xml.stem}{e}" for e in IMAGE_EXTS if (img_dir / f"{xml.stem}{e}").exists()), None)
        if image is None:
            continue
        root = ET.parse(xml).getroot()
        boxes, names = [], []
        for obj in root.findall("object"):
            bb = obj.find("bndbox")
            boxes.append([float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
            name = obj.find("name").text.strip()
            names.append(CLASS_NAMES.get(name, name))
        items.append((image, np.array(boxes, np.float32).reshape(-1, 4), names))
        if limit and len(items) >= limit:
            break
    return items


def match(gt: np.ndarray, det: np.ndarray, iou_min: float) -> tuple[np.ndarray, int]:
    """(bool per gt: matched, number of matched detections), one to one by Hungarian assignment."""
    matched = np.zeros(len(gt), bool)
    if len(gt) == 0 or len(det) == 0:
        return matched, 0
    iou = box_iou(gt, det)
    rows, cols = linear_sum_assignment(-iou)
    ok = iou[rows, cols] >= iou_min
    matched[rows[ok]] = True
    return matched, int(ok.sum())


def evaluate(label: str, mode: str, opts: dict, items, iou_min: float, min_score: float, sweep: list[float] = (),
             montage: list | None = None) -> list[dict]:
    """One row of figures for ``mode`` at ``min_score`` (plus one per ``sweep`` score, filtered post hoc).

    ``montage``: a list to append 96x96 crops of unmatched detections to.
    """
    det = FaceDetector(mode, min_score=min_score, **opts)
    found, times = [], []
    try:
        det.detect(cv2.imread(str(items[0][0])))  # warm-up (allocation, first-call costs)
        for path, gt, _names in items:
            image = cv2.imread(str(path))
            t0 = time.perf_counter()
            faces = det.detect(image)
            times.append((time.perf_counter() - t0) * 1000)
            found.append((faces.xyxy, faces.score))
            if montage is not None and len(faces):
                unmatched = box_iou(faces.xyxy, gt).max(axis=1, initial=0) < iou_min if len(gt) else np.ones(len(faces), bool)
                montage.extend(_crop_tile(image, b, sc) for b, sc in zip(faces.xyxy[unmatched], faces.score[unmatched]))
    finally:
        det.close()
    rows = []
    for score_min in [min_score, *[s for s in sweep if s > min_score]]:
        row = _figures(items, [(b[s >= score_min]) for b, s in found], iou_min)
        row.update(mode=label if score_min == min_score else f"{label} @score>={score_min}", min_score=score_min,
                   ms_per_image=statistics.mean(times), ms_per_image_p50=statistics.median(times))
        rows.append(row)
    return rows


def _crop_tile(image: np.ndarray, box: np.ndarray, score: float, size: int = 96) -> np.ndarray:
    """The app's square face crop with a wide margin (context), BGR kept, score and width written on it."""
    tile = np.ascontiguousarray(crop_face(image, box, size, margin=0.6, bgr=False))  # bgr=False: no channel swap
    cv2.putText(tile, f"{score:.2f} {int(box[2] - box[0])}px", (2, size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 255, 255), 1)
    return tile


def write_montage(path: Path, tiles: list[np.ndarray], columns: int = 12, max_tiles: int = 144) -> None:
    """Every k-th tile (k so that at most ``max_tiles`` are shown) in a grid."""
    step = max(1, -(-len(tiles) // max_tiles))
    tiles = tiles[::step] or [np.zeros((96, 96, 3), np.uint8)]
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack((tiles[i : i + columns] + [blank] * columns)[:columns]) for i in range(0, len(tiles), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))


def _figures(items, boxes: list[np.ndarray], iou_min: float) -> dict:
    widths, classes, hits = [], [], []
    n_det = n_tp = 0
    for (path, gt, names), det in zip(items, boxes):
        m, tp = match(gt, det, iou_min)
        hits.extend(m.tolist())
        widths.extend((gt[:, 2] - gt[:, 0]).tolist())
        classes.extend(names)
        n_det += len(det)
        n_tp += tp
    hits, widths, classes = np.array(hits, bool), np.array(widths), np.array(classes)
    row = {
        "images": len(items),
        "faces": int(len(hits)),
        "recall": float(hits.mean()) if len(hits) else float("nan"),
        "by_width": {},
        "by_class": {},
        "detections": n_det,
        "precision": n_tp / n_det if n_det else float("nan"),
        "fp_per_image": (n_det - n_tp) / len(items),
    }
    for name, lo, hi in BUCKETS:
        sel = (widths >= lo) & (widths < hi)
        row["by_width"][name] = {"faces": int(sel.sum()), "recall": float(hits[sel].mean()) if sel.any() else float("nan")}
    for name in sorted(set(classes.tolist())):
        sel = classes == name
        row["by_class"][name] = {"faces": int(sel.sum()), "recall": float(hits[sel].mean())}
    return row


def video_speed(label: str, mode: str, opts: dict, video: Path, max_frames: int | None, min_score: float) -> dict:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {video}")
    det = FaceDetector(mode, min_score=min_score, video=True, **opts)  # a clip: gated where the mode gates (motion)
    decode, detect, cpu, faces_n = [], [], [], []
    size = None
    try:
        while max_frames is None or len(detect) < max_frames:
            t0 = time.perf_counter()
            ok, frame = cap.read()
            t1 = time.perf_counter()
            if not ok:
                break
            size = frame.shape[1::-1]
            c1 = time.process_time()
            faces = det.detect(frame)
            t2 = time.perf_counter()
            cpu.append((time.process_time() - c1) * 1000)
            decode.append((t1 - t0) * 1000)
            detect.append((t2 - t1) * 1000)
            faces_n.append(len(faces))
    finally:
        det.close()
        cap.release()
    warm = detect[1:] or detect  # the first call allocates
    return {
        "mode": label,
        "video": str(video),
        "size": list(size) if size else None,
        "frames": len(detect),
        "detect_ms_mean": statistics.mean(warm),
        "detect_ms_p50": statistics.median(warm),
        "detect_ms_p95": float(np.percentile(warm, 95)),
        # CPU time of this process (all threads) per detect: less sensitive to other users' load than wall time
        "detect_cpu_ms_mean": statistics.mean(cpu[1:] or cpu),
        "decode_ms_mean": statistics.mean(decode),
        "faces_per_frame": statistics.mean(faces_n),
        "frames_with_face": float(np.mean(np.array(faces_n) > 0)),
    }


def _f(x: float, nd: int = 3) -> str:
    return "nan" if x != x else f"{x:.{nd}f}"


def recall_table(rows: list[dict]) -> str:
    buckets = [b[0] for b in BUCKETS]
    classes = sorted({c for r in rows for c in r["by_class"]})
    head = ["mode", "recall"] + [f"w {b}" for b in buckets] + classes + ["precision", "FP/img", "ms/img"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r['mode']}`", _f(r["recall"])]
        cells += [_f(r["by_width"][b]["recall"]) for b in buckets]
        cells += [_f(r["by_class"].get(c, {}).get("recall", float("nan"))) for c in classes]
        cells += [_f(r["precision"]), _f(r["fp_per_image"], 2), _f(r["ms_per_image"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        r = rows[0]
        counts = ", ".join(f"{b}: {r['by_width'][b]['faces']}" for b in buckets)
        ccounts = ", ".join(f"{c}: {r['by_class'][c]['faces']}" for c in classes)
        lines.append(f"\n{r['images']} images, {r['faces']} faces (by width {counts}; by class {ccounts}).")
    return "\n".join(lines)


def video_table(rows: list[dict]) -> str:
    head = ["mode", "frames", "detect ms mean", "p50", "p95", "detect CPU-ms", "decode ms", "faces/frame", "frames with a face"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| `{r['mode']}` | {r['frames']} | {r['detect_ms_mean']:.1f} | {r['detect_ms_p50']:.1f} | {r['detect_ms_p95']:.1f} "
            f"| {r['detect_cpu_ms_mean']:.1f} | {r['decode_ms_mean']:.1f} | {r['faces_per_frame']:.2f} | {r['frames_with_face']:.2f} |"
        )
    if rows and rows[0]["size"]:
        lines.append(f"\nvideo {rows[0]['video']} ({rows[0]['size'][0]}x{rows[0]['size'][1]})")
    return "\n".join(lines)


def streams_table(rows: list[dict]) -> str:
    head = ["mode", "streams", "aggregate fps", "fps per stream", "latency p50 ms (per stream)", "latency p95 ms (per stream)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        per = r["per_stream"]
        fps = ", ".join(f"{s['fps']:.1f}" for s in per)
        p50 = ", ".join(f"{s['latency_ms']['p50']:.0f}" for s in per)
        p95 = ", ".join(f"{s['latency_ms']['p95']:.0f}" for s in per)
        lines.append(f"| `{r['mode']}` | {r['streams']} | {r['aggregate_fps']:.1f} | {fps} | {p50} | {p95} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="Pascal-VOC folder with images/ and annotations/")
    ap.add_argument("--modes", default="short,full,dense,tiled", help="modes to compare (see module docstring)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--iou", type=float, default=0.3, help="IoU for a match (default 0.3)")
    ap.add_argument("--min-score", type=float, default=0.5, help="detector min_score (default 0.5)")
    ap.add_argument("--score-sweep", type=lambda t: [float(x) for x in t.split(",")], default=[],
                    help="also report detections filtered at these higher scores (e.g. 0.6,0.7; exploration only)")
    ap.add_argument("--video", type=Path, help="also time each mode on this video (ms per frame)")
    ap.add_argument("--video-frames", type=int, default=None, help="only the first N frames of --video")
    ap.add_argument("--streams", type=lambda t: [int(x) for x in t.split(",")], default=[],
                    help="also run the pipeline on N copies of --video at once (e.g. 1,2,4): aggregate fps, latency")
    ap.add_argument("--fp-montage", type=Path, help="write a grid of the first mode's unmatched detections here (PNG)")
    ap.add_argument("--json", type=Path, help="write all figures as JSON here")
    ap.add_argument("--md", type=Path, help="write the tables as Markdown here")
    args = ap.parse_args(argv)
    if not args.data and not args.video:
        ap.error("give --data and/or --video")
    modes = parse_modes(args.modes)
    load_before = os.getloadavg()
    rows, vrows = [], []
    if args.data:
        items = load_voc(args.data, args.limit)
        if not items:
            raise SystemExit(f"no annotated images under {args.data}")
        tiles: list | None = [] if args.fp_montage else None
        for k, (label, mode, opts) in enumerate(modes):
            rows.extend(evaluate(label, mode, opts, items, args.iou, args.min_score, args.score_sweep, tiles if k == 0 else None))
            print(f"done {label}: recall {rows[-1]['recall']:.3f}", file=sys.stderr, flush=True)
        print(recall_table(rows))
        if tiles is not None:
            write_montage(args.fp_montage, tiles)
            print(f"\n{len(tiles)} unmatched detections of {modes[0][0]}; a sample of them in {args.fp_montage}")
    if args.video:
        for label, mode, opts in modes:
            vrows.append(video_speed(label, mode, opts, args.video, args.video_frames, args.min_score))
        print()
        print(video_table(vrows))
    srows = []
    if args.streams:
        if not args.video:
            ap.error("--streams needs --video")
        from maskwatch import bench
        from maskwatch.config import Config, DetectorConfig

        for label, mode, opts in modes:
            for n in args.streams:
                config = Config(source=str(args.video), interval_s=60)
                # the pipeline as a user runs it: the mode's own default min_score, not --min-score
                config.detector = DetectorConfig(options=dict(opts)).with_mode(mode)
                report = bench.run_streams(config, n, frames=args.video_frames)
                report["mode"] = label
                srows.append(report)
        print()
        print(streams_table(srows))
    command = "python " + " ".join([Path(sys.argv[0]).as_posix()] + [f'"{a}"' if " " in a or ";" in a else a for a in (argv or sys.argv[1:])])
    meta = {
        "command": command, "iou": args.iou, "min_score": args.min_score, "machine": platform.platform(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        # the machine is shared: timings are only comparable at similar load
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "recall": rows, "video": vrows, "streams": srows}, indent=2))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        parts = [
            f"Command: `{command}`",
            f"Match: IoU >= {args.iou}, detector min_score {args.min_score}; {meta['machine']}, {meta['cpus']} CPUs, "
            f"load average (1 min) before/after: {meta['loadavg_1m_before_after']}",
        ]
        if rows:
            parts.append(recall_table(rows))
        if vrows:
            parts.append(video_table(vrows))
        if srows:
            parts.append(streams_table(srows))
        args.md.write_text("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
