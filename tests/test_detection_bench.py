"""``maskwatch.bench.run_streams``: several pipelines at once, one process each (real clips, no timing asserts)."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_MODEL
from maskwatch import bench
from maskwatch.config import Config

CLIP = Path(__file__).parent / "fixtures" / "clip_320x240.mp4"


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
