"""``maskwatch.bench.run_streams``: several pipelines at once, one process each (real clips, no timing asserts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_MODEL
from maskwatch import bench
from maskwatch.config import Config

CLIP = Path(__file__).resolve().parents[1] / "fixtures" / "clip_320x240.mp4"


def test_two_streams_report_aggregate_fps_and_each_streams_latency():
    config = Config(source=str(CLIP), model=TINY_MODEL, interval_s=60)
    report = bench.run_streams(config, 2, frames=20, warmup=2)
    assert report["streams"] == 2 and len(report["per_stream"]) == 2
    assert report["resolution"] == [320, 240] and report["aggregate_fps"] > 0
    # on fewer cores than streams each detector gets its share of the threads
    assert report["detector_options"]["num_threads"] >= 1
    for s in report["per_stream"]:
        assert s["frames"] == 20 and s["fps"] > 0
        assert s["latency_ms"]["p50"] is not None and s["latency_ms"]["p95"] >= s["latency_ms"]["p50"]
    text = bench.format_streams(report)
    assert "2 stream(s)" in text and "aggregate" in text and len(text.splitlines()) == 4


def test_cli_bench_streams(tmp_path):
    import json

    from conftest import run_cli

    out = tmp_path / "streams.json"
    r = run_cli("bench", "--source", CLIP, "--model", TINY_MODEL, "--frames", 8, "--warmup", 1, "--streams", 2, "--json", out,
                timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 stream(s)" in r.stdout and "aggregate" in r.stdout
    report = json.loads(out.read_text())
    assert report["streams"] == 2 and [s["frames"] for s in report["per_stream"]] == [8, 8]
    bad = run_cli("bench", "--source", CLIP, "--streams", 0)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--streams" in bad.stderr


def test_a_stream_process_that_dies_without_a_report_is_one_error_not_a_hang():
    import multiprocessing as mp

    from maskwatch.bench import _collect_reports
    from maskwatch.errors import MaskwatchError

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    dead = ctx.Process(target=_exit_hard)  # dies like a stream killed for memory: no report
    dead.start()
    dead.join(timeout=30)
    with pytest.raises(MaskwatchError, match="ended without a report"):
        _collect_reports(queue, [dead])


def _exit_hard() -> None:
    import os

    os._exit(9)
