"""Motion gating on clips: the faces a whole-frame ``retina`` pass finds on every frame, and what the gated detector finds.

    python benchmarks/detector_motion.py --json benchmarks/results/detector_motion.json --md benchmarks/results/detector_motion.md
    python benchmarks/detector_motion.py --clip ../shared/data/videos/corridor_cctv_1080p.mp4 --variant "full_every=5"

Recall of a gating scheme cannot be measured on still images (each is a first frame: a
whole-frame pass), so it is measured on clips against the plain detector on every frame of the
same clip: ``kept`` = the plain detector's faces the gated one also finds (IoU >= 0.3),
``new`` = gated faces the plain detector has not (mostly small faces of moving people, which the
regions run at a higher scale; look at them before calling them false), ``CPU ms`` = this
process's CPU time per ``detect`` (all threads; steadier than wall time on a shared machine),
and which pass each frame got. Clips: the 1080p corridor clip, the demo clip and the tests'
known-faces clip (written on the fly).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from maskwatch.detection import FaceDetector, box_iou  # noqa: E402


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def measure(frames: list[np.ndarray], options: dict) -> tuple[list, list, collections.Counter]:
    det = FaceDetector("retina", 0.7, **options)
    found, cpu, passes = [], [], collections.Counter()
    try:
        for f in frames:
            c = time.process_time()
            found.append(det.detect(f))
            cpu.append((time.process_time() - c) * 1000)
            passes[getattr(det._backend, "last_pass", "full")] += 1
    finally:
        det.close()
    return found, cpu, passes


def compare(ref: list, got: list) -> tuple[int, int, int]:
    kept = total = new = 0
    for a, b in zip(ref, got):
        total += len(a)
        if len(a) and len(b):
            kept += int((box_iou(a.xyxy, b.xyxy).max(axis=1) >= 0.3).sum())
        if len(b):
            new += int((box_iou(b.xyxy, a.xyxy).max(axis=1) < 0.3).sum()) if len(a) else len(b)
    return kept, total, new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, action="append", help="clips (default: corridor, demo, known-faces)")
    ap.add_argument("--variant", action="append", default=[], help="extra gated options, e.g. full_every=5,region_scale=1.5")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clips = args.clip
        if not clips:
            from conftest import write_known_faces_clip

            from maskwatch.paths import demo_clip

            clips = [p for p in (ROOT.parent / "shared/data/videos/corridor_cctv_1080p.mp4",) if p.exists()]
            clips += [demo_clip(), write_known_faces_clip(Path(tmp) / "known_faces.mp4")["path"]]
        variants = [("motion (defaults)", {"motion": True})]
        for v in args.variant:
            opts = {"motion": True}
            for kv in v.split(","):
                k, _, x = kv.partition("=")
                opts[k] = json.loads(x) if x not in ("True", "False") else x == "True"
            variants.append((v, opts))
        rows = []
        for clip in clips:
            frames = frames_of(clip)
            ref, ref_cpu, _ = measure(frames, {"motion": False})
            h, w = frames[0].shape[:2]
            rows.append({"clip": Path(clip).name, "size": f"{w}x{h}", "frames": len(frames), "variant": "plain (every frame)",
                         "faces": sum(map(len, ref)), "kept": None, "new": 0, "cpu_ms": statistics.mean(ref_cpu),
                         "passes": {"full": len(frames)}})
            for label, opts in variants:
                got, cpu, passes = measure(frames, opts)
                kept, total, new = compare(ref, got)
                rows.append({"clip": Path(clip).name, "size": f"{w}x{h}", "frames": len(frames), "variant": label,
                             "faces": sum(map(len, got)), "kept": kept, "plain_faces": total, "new": new,
                             "cpu_ms": statistics.mean(cpu), "passes": dict(passes)})
            print(f"done {Path(clip).name}", file=sys.stderr, flush=True)
    lines = ["| clip | variant | faces | plain faces kept | new faces | CPU ms/frame | x less CPU | passes (full / regions / none) |",
             "|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        if r["kept"] is None:
            base[r["clip"]] = r["cpu_ms"]
        kept = "-" if r["kept"] is None else f"{r['kept']} / {r['plain_faces']} ({r['kept'] / max(r['plain_faces'], 1):.3f})"
        p = r["passes"]
        lines.append(f"| {r['clip']} ({r['size']}, {r['frames']} frames) | {r['variant']} | {r['faces']} | {kept} | {r['new']} "
                     f"| {r['cpu_ms']:.1f} | {base[r['clip']] / r['cpu_ms']:.2f} | {p.get('full', 0)} / {p.get('regions', 0)} / {p.get('none', 0)} |")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])
    text = f"Command: `{command}`\n\nmin score 0.7 (the default); match IoU >= 0.3.\n\n" + "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    if args.md:
        args.md.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
