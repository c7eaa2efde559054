"""int8 classifier cost per face against its input size, on this CPU (the 1 ms/face budget of issue 9).

Builds the recipe's network (EfficientNet-Lite0 head, ``train.models.build_model``) at each input
size, converts it to int8 exactly as ``maskwatch-train export`` does (``train.export.convert_int8``;
random calibration images: the weights do not change the cost of an int8 graph), and times it with
the app's runtime (``ai-edge-litert``, 1 thread, as ``MaskClassifier``) at batch 1 and batch 8.
Sizes are timed interleaved (A, B, C, A, B, C, ...) so machine load falls on all of them alike.

    python benchmarks/classifier_input_size_speed.py --sizes 64 96 112 --out benchmarks/results/classifier_input_size_speed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_int8(size: int) -> bytes:
    from train.export import convert_int8
    from train.models import build_model

    model = build_model("efficientnet_lite0", input_size=size, weights="none")
    calib = np.random.default_rng(0).integers(0, 256, (32, size, size, 3)).astype(np.float32)
    return convert_int8(model, calib)


def interpreter(model: bytes):
    from maskwatch.classification import _interpreter_class

    it = _interpreter_class()[0](model_content=model, num_threads=1)
    return it


def time_once(it, x: np.ndarray) -> float:
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()  # warm-up at this shape
    t0 = time.perf_counter()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return (time.perf_counter() - t0) * 1000 / len(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 112])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    models = {s: build_int8(s) for s in args.sizes}
    its = {s: interpreter(m) for s, m in models.items()}
    dtype = {s: its[s].get_input_details()[0]["dtype"] for s in args.sizes}
    times = {(s, b): [] for s in args.sizes for b in (1, 8)}
    rng = np.random.default_rng(1)
    for _ in range(args.rounds):
        for s in args.sizes:
            for b in (1, 8):
                x = rng.integers(0, 255, (b, s, s, 3)).astype(dtype[s])
                times[(s, b)].append(time_once(its[s], x))
    rows = [{"input_px": s, "int8_bytes": len(models[s]),
             "ms_per_face_batch1": round(float(np.median(times[(s, 1)])), 3),
             "ms_per_face_batch8": round(float(np.median(times[(s, 8)])), 3)} for s in args.sizes]
    result = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "rounds": args.rounds, "note": "medians of interleaved rounds; other jobs shared the CPU", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# int8 classifier cost per face by input size", "", f"- command: `{result['command']}`",
             f"- {result['note']}; {result['cores']} cores", "",
             "| input | int8 size | ms/face, batch 1 | ms/face, batch 8 |", "|---|---|---|---|"]
    lines += [f"| {r['input_px']} px | {r['int8_bytes'] / 1e6:.2f} MB | {r['ms_per_face_batch1']:.3f} | "
              f"{r['ms_per_face_batch8']:.3f} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
