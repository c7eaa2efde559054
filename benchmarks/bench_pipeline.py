"""Pipeline benchmarks: throughput on the 1080p CCTV clip, capture-to-label latency on a live RTSP
camera, and memory over a long run on a looping RTSP stream.

    python benchmarks/bench_pipeline.py throughput [--source ../shared/data/videos/corridor_cctv_1080p.mp4]
                                                   [--detector MODE] [--detect-every N] [--frames N]
    python benchmarks/bench_pipeline.py latency [--seconds 20] [--source CLIP]
    python benchmarks/bench_pipeline.py memory --minutes 30 [--source CLIP]
    python benchmarks/bench_pipeline.py all      # throughput, then latency 20 s, then memory 1 minute

``throughput`` is ``maskwatch bench`` (every frame processed, per-stage mean/p95 ms, end-to-end fps,
faces per frame, peak RSS). ``latency`` and ``memory`` serve the clip with the real GStreamer RTSP
server of the tests (``tests/support/rtsp.py``; Debian ``/usr/bin/python3`` + gst-rtsp-server) on
127.0.0.1 and run the real pipeline on ``rtsp://127.0.0.1:PORT/stream``. Latency is measured from
the moment the source's reader thread has the decoded frame (``Frame.captured_at``) to the moment
its faces are labelled and counted: it includes waiting in the newest-frame slot, detection,
classification, tracking and counting, not the server's encoder or the network. ``memory`` prints
the resident set size every 30 s and a summary (start, end, max, growth per minute after the
first minute). ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "support"))  # tests/support/rtsp.py: the RTSP test server

from maskwatch import bench  # noqa: E402
from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow  # noqa: E402
from maskwatch.config import Config, DetectorConfig  # noqa: E402
from maskwatch.monitor import Monitor  # noqa: E402
from maskwatch.sinks import CallbackSink  # noqa: E402
from maskwatch.paths import demo_clip  # noqa: E402
from maskwatch.pipeline import Pipeline  # noqa: E402

CCTV_1080P = REPO.parent / "shared" / "data" / "videos" / "corridor_cctv_1080p.mp4"


def _config(args, source) -> Config:
    config = Config(source=str(source))
    if args.model:
        config = replace(config, model=Path(args.model))
    det = config.detector
    config = replace(config, detector=DetectorConfig(
        mode=args.detector or det.mode, min_score=det.min_score, every_n=args.detect_every or det.every_n))
    return config


def throughput(args) -> dict:
    source = Path(args.source) if args.source else CCTV_1080P
    if not source.is_file():
        raise SystemExit(f"bench_pipeline: {source} not found (the 1080p clip lives in ../shared/data/videos)")
    report = bench.run(_config(args, source), frames=args.frames, warmup=10)
    print(bench.format_report(report), flush=True)
    return report


def _rtsp_server(clip: Path):
    from rtsp import RtspServer, rtsp_server_missing

    missing = rtsp_server_missing()
    if missing:
        raise SystemExit(f"bench_pipeline: the RTSP test server cannot run: {missing}")
    return RtspServer(clip).start()


def latency(args) -> dict:
    clip = Path(args.source) if args.source else demo_clip()
    server = _rtsp_server(clip)
    try:
        config = _config(args, server.url)
        pipeline = Pipeline(config)
        lat, stages, t_first, dropped_at_start = [], [], None, 0
        deadline = None
        for result in pipeline:
            if result.frame is None:
                continue
            now = time.monotonic()
            if t_first is None:
                t_first = now
                deadline = now + args.warmup + args.seconds
            if now - t_first >= args.warmup:
                if not lat:
                    dropped_at_start = result.stats.dropped_frames
                lat.append(result.stats.latency_ms)
                stages.append(result.stats.stage_ms.get("total", 0.0))
            if now >= deadline:
                break
        dropped = pipeline.stats.dropped_frames - dropped_at_start
        pipeline.close()
    finally:
        server.stop()
    lat_a = np.asarray(lat)
    report = {
        "source": f"rtsp://127.0.0.1/stream serving {clip.name}",
        "seconds": args.seconds,
        "frames": len(lat),
        "fps": round(len(lat) / args.seconds, 2),
        "latency_ms": {"mean": round(float(lat_a.mean()), 1), "p50": round(float(np.percentile(lat_a, 50)), 1),
                       "p95": round(float(np.percentile(lat_a, 95)), 1), "max": round(float(lat_a.max()), 1)},
        "processing_ms_mean": round(float(np.mean(stages)), 1),
        "dropped_frames": int(dropped),
        "detector": config.detector.mode,
    }
    print(f"capture-to-label latency over {args.seconds:g} s on {report['source']}: "
          f"mean {report['latency_ms']['mean']} ms, p95 {report['latency_ms']['p95']} ms, "
          f"max {report['latency_ms']['max']} ms ({report['frames']} frames, {report['fps']} fps, "
          f"{report['dropped_frames']} dropped by the newest-frame reader)", flush=True)
    return report


def memory(args) -> dict:
    clip = Path(args.source) if args.source else demo_clip()
    server = _rtsp_server(clip)
    samples: list[tuple[float, float, int]] = []  # (seconds since the first frame, rss MiB, frames)
    frames = [0]
    first_frame = threading.Event()

    def on_result(_result):
        frames[0] += 1
        first_frame.set()

    try:
        config = replace(_config(args, server.url), interval_s=60.0)
        monitor = Monitor(config, sinks=[CallbackSink(on_result=on_result, on_status=lambda stats: None)])  # frames only
        timer_stop = threading.Event()

        def sample():
            while not first_frame.wait(0.5):
                if timer_stop.is_set():
                    return
            t0 = time.monotonic()
            while not timer_stop.wait(args.every):
                t = time.monotonic() - t0
                rss = bench.current_rss_mb()
                samples.append((t, rss, frames[0]))
                print(f"{t / 60:6.1f} min  rss {rss:7.1f} MiB  frames {frames[0]}", flush=True)
                if t >= args.minutes * 60:
                    monitor.stop()
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        monitor.run()
        timer_stop.set()
    finally:
        server.stop()
    after_first = [(t, r) for t, r, _ in samples if t >= 60]
    slope = float(np.polyfit([t / 60 for t, _ in after_first], [r for _, r in after_first], 1)[0]) if len(after_first) >= 2 else None
    report = {
        "minutes": args.minutes,
        "frames": frames[0],
        "rss_mb": {"first": samples[0][1] if samples else None, "last": samples[-1][1] if samples else None,
                   "max": max((r for _, r, _ in samples), default=None),
                   "growth_mb_per_min_after_1min": None if slope is None else round(slope, 3)},
        "samples": [{"s": round(t, 1), "rss_mb": round(r, 1), "frames": n} for t, r, n in samples],
    }
    growth = report["rss_mb"]["growth_mb_per_min_after_1min"]
    print(f"RSS over {args.minutes:g} min: first {report['rss_mb']['first']:.1f} MiB, last {report['rss_mb']['last']:.1f} MiB, "
          f"max {report['rss_mb']['max']:.1f} MiB, growth after the first minute "
          f"{'n/a (run longer)' if growth is None else f'{growth} MiB/min'} ({frames[0]} frames)", flush=True)
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("throughput", "latency", "memory", "all"))
    p.add_argument("--source", help="clip (throughput: default the 1080p CCTV clip; latency/memory: default the demo clip)")
    p.add_argument("--detector", help="face detector mode (default: the app's default)")
    p.add_argument("--detect-every", type=int, help="run the detector every N frames")
    p.add_argument("--model", help="mask classifier .tflite (default: the shipped one)")
    p.add_argument("--frames", type=int, help="throughput: frames to time (default: the whole clip)")
    p.add_argument("--seconds", type=float, default=20.0, help="latency: seconds to measure (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="latency: seconds left out first (default 3)")
    p.add_argument("--minutes", type=float, default=1.0, help="memory: minutes to run (default 1)")
    p.add_argument("--every", type=float, default=30.0, help="memory: seconds between RSS samples (default 30)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    import_mediapipe_without_tensorflow()  # as the app does: MediaPipe would otherwise load TensorFlow
    out = {}
    if args.what in ("throughput", "all"):
        out["throughput"] = throughput(args)
    if args.what in ("latency", "all"):
        if args.what == "all":
            args.source = None
        out["latency"] = latency(args)
    if args.what in ("memory", "all"):
        out["memory"] = memory(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
