"""onnxruntime session options for the RetinaFace graph: threads, graph optimisation level, execution mode.

    python benchmarks/detector_session.py [--model models/face_detection_retinaface_mnet025.onnx] [--runs 30]

One 960x544 input (a 1080p frame's network input); every configuration's runs are interleaved
with the others' so they share the machine's load; median wall ms and median CPU ms (this
process, all threads) per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def session(path: Path, threads: int, level, mode, spinning: bool) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    o.graph_optimization_level, o.execution_mode = level, mode
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models/face_detection_retinaface_mnet025.onnx")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    G, E = ort.GraphOptimizationLevel, ort.ExecutionMode
    configs = {
        "1 thread, ALL, sequential": (1, G.ORT_ENABLE_ALL, E.ORT_SEQUENTIAL, False),
        "2 threads, ALL, sequential (the default)": (2, G.ORT_ENABLE_ALL, E.ORT_SEQUENTIAL, False),
        "2 threads, ALL, sequential, spinning": (2, G.ORT_ENABLE_ALL, E.ORT_SEQUENTIAL, True),
        "2 threads, EXTENDED (no NCHWc layout)": (2, G.ORT_ENABLE_EXTENDED, E.ORT_SEQUENTIAL, False),
        "2 threads, BASIC": (2, G.ORT_ENABLE_BASIC, E.ORT_SEQUENTIAL, False),
        "2 threads, ALL, parallel": (2, G.ORT_ENABLE_ALL, E.ORT_PARALLEL, False),
    }
    sessions = {k: session(args.model, *v) for k, v in configs.items()}
    x = np.random.default_rng(0).uniform(-120, 130, (1, 3, 544, 960)).astype(np.float32)
    wall = {k: [] for k in configs}
    cpu = {k: [] for k in configs}
    for s in sessions.values():
        s.run(None, {"input": x})
    for _ in range(args.runs):
        for k, s in sessions.items():
            t, c = time.perf_counter(), time.process_time()
            s.run(None, {"input": x})
            wall[k].append((time.perf_counter() - t) * 1000)
            cpu[k].append((time.process_time() - c) * 1000)
    print(f"| session options | wall ms (median of {args.runs}) | CPU ms |\n|---|---|---|")
    for k in configs:
        print(f"| {k} | {statistics.median(wall[k]):.1f} | {statistics.median(cpu[k]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
