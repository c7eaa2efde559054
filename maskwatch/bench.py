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

from maskwatch.classification import MaskClassifier
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


def _stream_worker(config: Config, frames: int | None, warmup: int, start, queue) -> None:
    """One stream of :func:`run_streams`, in its own process: wait for the others, then :func:`run`."""
    try:
        pipeline = Pipeline(config)
        start.wait()
        t0 = time.perf_counter()
        report = run(config, frames=frames, warmup=warmup, pipeline=pipeline)
        report["started_s"], report["ended_s"] = t0, time.perf_counter()
        queue.put(report)
    except BaseException as e:  # the parent reports it; never hang it
        queue.put({"error": f"{type(e).__name__}: {e}"})


def _collect_reports(queue, procs) -> list[dict]:
    """One report per stream process; a process that died without one (killed for memory, a native
    crash) is a one-line error instead of a wait that never ends."""
    import queue as queues

    reports: list[dict] = []
    while len(reports) < len(procs):
        try:
            reports.append(queue.get(timeout=2.0))
        except queues.Empty:
            dead = [p for p in procs if p.exitcode is not None]
            if len(dead) > len(reports) and queue.empty():
                for p in procs:
                    if p.exitcode is None:
                        p.terminate()
                codes = ", ".join(str(p.exitcode) for p in dead)
                raise MaskwatchError(f"bench: a stream process ended without a report (exit codes: {codes})") from None
    return reports


def run_streams(config: Config, streams: int, frames: int | None = None, warmup: int = 5) -> dict:
    """``streams`` pipelines on ``config``'s source at once, one process each; aggregate and per-stream figures.

    Processes, not threads: each camera of a site is its own pipeline, and the Python parts of
    one (reading, tracking, counting) never wait for another's GIL. On a machine with fewer cores
    than streams each detector gets ``cpus // streams`` inference threads (at least 1) unless the
    config sets ``num_threads``: two streams with two threads each on two cores only trade places.
    The aggregate fps is all streams' frames over the time from the common start to the last
    stream's end; each stream's ``latency_ms`` is capture (or decode, for a file) to label.
    """
    import dataclasses
    import multiprocessing as mp

    streams = max(1, int(streams))
    options = dict(config.detector.options)
    threads = max(1, (os.cpu_count() or 1) // streams)
    if "num_threads" not in options and config.detector.mode == "retina":
        options["num_threads"] = threads
    config = dataclasses.replace(config, detector=dataclasses.replace(config.detector, options=options))
    ctx = mp.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_stream_worker, args=(config, frames, warmup, start, queue), daemon=True) for _ in range(streams)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    start.set()
    reports = _collect_reports(queue, procs)
    for p in procs:
        p.join(timeout=10)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise MaskwatchError(f"bench: a stream failed: {errors[0]}")
    wall = max(r["ended_s"] for r in reports) - min(r["started_s"] for r in reports)
    total = sum(r["frames"] + r["warmup_frames"] for r in reports)
    return {
        "streams": streams,
        "source": reports[0]["source"],
        "resolution": reports[0]["resolution"],
        "realtime": bool(config.sources.realtime),
        "detector": config.detector.mode,
        "detector_options": options,
        "aggregate_fps": round(total / max(wall, 1e-9), 2),
        "per_stream": [{"fps": r["fps"], "latency_ms": r["latency_ms"], "frames": r["frames"],
                        "detect_ms": r["stage_ms"]["detect"], "faces_per_frame": r["faces_per_frame"]} for r in reports],
        "machine": reports[0]["machine"],
    }


def format_streams(report: dict) -> str:
    """The table of :func:`run_streams`."""
    lines = [
        f"{report['streams']} stream(s) of {report['source']} ({report['resolution'][0]}x{report['resolution'][1]}"
        f"{', paced at the clip fps' if report['realtime'] else ', as fast as decoded'}); detector {report['detector']} "
        f"{report['detector_options']}; aggregate {report['aggregate_fps']:.1f} fps",
        f"{'stream':<8}{'fps':>8}{'latency p50 ms':>16}{'p95 ms':>10}{'detect ms':>11}",
    ]
    for k, s in enumerate(report["per_stream"]):
        lines.append(f"{k:<8}{s['fps']:>8.1f}{s['latency_ms']['p50']:>16.1f}{s['latency_ms']['p95']:>10.1f}{s['detect_ms']['mean']:>11.1f}")
    return "\n".join(lines)
