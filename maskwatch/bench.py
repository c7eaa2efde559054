"""``maskwatch bench``: per-stage timings, end-to-end fps, faces per frame and peak memory.

Runs the real :class:`~maskwatch.pipeline.Pipeline` (every frame processed, no sinks, no drawing)
and aggregates the ``stats.stage_ms`` it measures for each frame. The first ``warmup`` frames
(model warm-up, first allocations) are left out of the timings and the fps.

Example (needs the shipped model)::

    from maskwatch.config import Config
    report = run(Config(source="assets/demo.mp4"), frames=100)
    print(format_report(report))

or ``maskwatch bench --source clip.mp4 --frames 300 --json bench.json``.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time

import numpy as np

from maskwatch.config import Config
from maskwatch.errors import MaskwatchError
from maskwatch.pipeline import STAGES, Pipeline
from maskwatch.sources.spec import display_path, redact


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage`` ``ru_maxrss``), MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def current_rss_mb() -> float:
    """Resident memory now (Linux ``/proc/self/statm``; falls back to the peak elsewhere), MiB."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def _summary(values) -> dict:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    return {
        "mean": round(float(a.mean()), 3),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "max": round(float(a.max()), 3),
    }


def run(config: Config, frames: int | None = None, warmup: int = 5, pipeline: Pipeline | None = None) -> dict:
    """Process ``frames`` frames (or the whole source) and return the report as a dict."""
    warmup = max(int(warmup), 0)
    pipeline = pipeline or Pipeline(config)
    if frames is None and pipeline.is_live:
        pipeline.close()
        raise MaskwatchError("bench on a live source never ends by itself: give --frames N")
    times = {k: [] for k in (*STAGES, "total")}
    latency, faces, detected = [], [], []
    resolution = None
    processed = 0
    t_start = None
    try:
        for result in pipeline:
            if result.frame is None:  # a live source between frames
                continue
            processed += 1
            if resolution is None:
                h, w = result.frame.image.shape[:2]
                resolution = [int(w), int(h)]
            if processed == warmup:
                t_start = time.perf_counter()
            if processed > warmup:
                for k in times:
                    times[k].append(result.stats.stage_ms.get(k, 0.0))
                latency.append(result.stats.latency_ms)
                faces.append(len(result.faces))
                detected.append(result.stats.stage_ms.get("detect", 0.0) > 0)
            if frames is not None and processed >= frames + warmup:
                break
        t_end = time.perf_counter()
        dropped = pipeline.stats.dropped_frames
    finally:
        pipeline.close()
    measured = len(faces)
    if measured == 0:
        raise MaskwatchError(f"bench: the source gave {processed} frame(s), not more than the {warmup} warm-up frame(s)")
    if t_start is None:  # warmup == 0
        t_start = t_end - sum(times["total"]) / 1000.0
    wall = max(t_end - t_start, 1e-9)
    from maskwatch.classification import MaskClassifier  # loaded by the pipeline already

    return {
        # the source is a stages.FrameSource: its name is redacted by contract, and once more here
        # (a test double or a new source may not), so a camera password never reaches a report
        "source": redact(pipeline.source.name),
        "source_kind": pipeline.source.kind,
        "resolution": resolution,
        "frames": measured,
        "warmup_frames": warmup,
        # the stages' protocols say nothing of modes or model files: the config the pipeline was
        # built from (and checked) does; a classifier that is not the shipped kind has no version
        "detector": pipeline.config.detector.mode,
        "detect_every": pipeline.every_n,
        "classifier": {"path": display_path(pipeline.config.model),
                       "version": pipeline.classifier.version if isinstance(pipeline.classifier, MaskClassifier) else None},
        "stage_ms": {k: _summary(v) for k, v in times.items()},
        "fps": round(measured / wall, 2),
        "wall_s": round(wall, 3),
        "faces_per_frame": round(float(np.mean(faces)), 3),
        "detector_frames": int(np.sum(detected)),
        "latency_ms": _summary(latency),
        "dropped_frames": int(dropped),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def format_report(report: dict) -> str:
    """The human-readable table ``maskwatch bench`` prints."""
    res = report["resolution"]
    lines = [
        f"source   {report['source']}  ({res[0]}x{res[1]}, {report['frames']} frames after {report['warmup_frames']} warm-up)",
        f"detector {report['detector']} every {report['detect_every']} frame(s); classifier {report['classifier']['version']}",
        f"{'stage':<10}{'mean ms':>10}{'p95 ms':>10}",
    ]
    for k, s in report["stage_ms"].items():
        mean = "-" if s["mean"] is None else f"{s['mean']:.2f}"
        p95 = "-" if s["p95"] is None else f"{s['p95']:.2f}"
        lines.append(f"{k:<10}{mean:>10}{p95:>10}")
    lat = report["latency_ms"]
    lines += [
        f"fps (end to end)   {report['fps']:.1f}",
        f"faces per frame    {report['faces_per_frame']:.2f}",
        f"latency ms         mean {lat['mean']:.1f}  p95 {lat['p95']:.1f}  "
        + ("(capture to label)" if report["source_kind"] in ("network", "webcam")
           else "(decoded to labelled, including the read-ahead queue)"),
        f"dropped frames     {report['dropped_frames']}",
        f"peak RSS           {report['peak_rss_mb']:.1f} MiB",
    ]
    return "\n".join(lines)
