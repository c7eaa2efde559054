"""The ``maskwatch`` command: headless runs, SIGTERM, appending, ``detect --json``, ``bench``, bad input.

Subprocess tests run ``python -m maskwatch.cli`` exactly as a user would; the slower bad-input
cases that need the face detector run ``main()`` in-process (same code, same stderr handling:
``capfd`` sees what reaches file descriptors 1 and 2). Tests that count faces pin
``--detector full`` (one box per face on the known-faces clip) and the untrained test classifier:
they test the plumbing; label accuracy is tested with the shipped model in test_pipeline.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from datetime import datetime

import numpy as np
import pytest

from conftest import PEOPLE, REPO, TINY_MODEL, requires_shipped_model, run_cli, start_cli
from maskwatch import LABELS
from maskwatch.cli import main
from maskwatch.paths import demo_clip
from maskwatch.sinks import CSV_COLUMNS
from rtsp import requires_rtsp_server


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {stderr!r}"
    assert lines[0].startswith("maskwatch: error: "), lines[0]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


def signal_once_logging(proc, log, sig, after_s: float) -> tuple[str, str]:
    """Send ``sig`` ``after_s`` seconds after the CSV header is written; (stdout, stderr) at exit."""
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the header is written once models and source are open
        time.sleep(after_s)
        proc.send_signal(sig)
        return proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


# -- headless ---------------------------------------------------------------------------------------


def test_headless_run_writes_rows_events_and_totals(known_faces_clip, tmp_path):
    log, events = tmp_path / "counts.csv", tmp_path / "events.jsonl"
    r = run_cli("--headless", "--source", known_faces_clip["path"], "--model", TINY_MODEL, "--detector", "full", "--interval", "1",
                "--log", log, "--events", events, "--snapshots", tmp_path / "snaps")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # native library chatter is hidden, nothing else to say
    rows = read_rows(log)
    assert rows[0] == list(CSV_COLUMNS)
    body = rows[1:]
    assert len(body) == 5  # 75 frames at 15 fps = 5 s of media -> 5 rows of 1 s, the last one closed at the end
    assert sum(int(r[2]) for r in body) == known_faces_clip["frames"]
    starts = [datetime.fromisoformat(r[0]) for r in body]
    assert [(b - a).total_seconds() for a, b in zip(starts, starts[1:])] == [1.0] * 4
    assert [r[CSV_COLUMNS.index("source_state")] for r in body] == ["live"] * 4 + ["ended"]  # the row written at the end of the file
    people = sum(int(r[4]) for r in body)
    assert people == known_faces_clip["people"]  # tracks do not depend on the (untrained) test classifier
    out = r.stdout.strip().splitlines()
    assert len(out) == 6 and out[-1].startswith(f"total: people {people} ")
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["kind"] for e in records].count("person_seen") == people
    # a snapshot per person decided without_mask / mask_worn_incorrectly, none for with_mask
    flagged = [e for e in records if e["kind"] == "label_decided" and e["label"] != "with_mask"]
    snaps = sorted(p.name for p in (tmp_path / "snaps").glob("*.jpg")) if (tmp_path / "snaps").exists() else []
    assert len(snaps) == len(flagged)
    assert all(f"_track{e['track_id']}_{e['label']}.jpg" in " ".join(snaps) for e in flagged)


def test_appending_to_a_log_keeps_old_rows(known_faces_clip, tmp_path, capfd):
    log = tmp_path / "counts.csv"
    old = "2020-01-01T00:00:00+00:00,2020-01-01T00:01:00+00:00,10,3,1,1,0,0,1.000,25.0,0,live"
    log.write_text(",".join(CSV_COLUMNS) + "\n" + old + "\n")
    args = ["--headless", "--quiet", "--source", str(known_faces_clip["path"]), "--model", str(TINY_MODEL),
            "--detector", "full", "--interval", "60", "--log", str(log)]
    assert main(args) == 0
    assert main(args) == 0
    rows = read_rows(log)
    assert rows[0] == list(CSV_COLUMNS) and ",".join(rows[1]) == old
    assert len(rows) == 4 and [int(r[2]) for r in rows[2:]] == [known_faces_clip["frames"]] * 2
    out, err = capfd.readouterr()
    assert err == "" and out.count("total: people") == 2


def test_sigterm_writes_the_partial_interval_and_exits_0(tmp_path):
    log = tmp_path / "counts.csv"
    proc = start_cli("--headless", "--realtime", "--source", demo_clip(), "--model", TINY_MODEL, "--detector", "full",
                     "--interval", "60", "--log", log)
    out, err = signal_once_logging(proc, log, signal.SIGTERM, after_s=1.5)
    assert proc.returncode == 0, err
    rows = read_rows(log)
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == 2
    frames = int(rows[1][2])
    assert 1 <= frames < 300  # about 1.5 s of a 30 fps clip, not the whole 10 s
    start, end = datetime.fromisoformat(rows[1][0]), datetime.fromisoformat(rows[1][1])
    assert 0 < (end - start).total_seconds() < 60
    assert "total: people" in out
    assert "Traceback" not in err


def test_sigint_is_handled_like_sigterm(tmp_path):
    log = tmp_path / "counts.csv"
    proc = start_cli("--headless", "--realtime", "--quiet", "--source", demo_clip(), "--model", TINY_MODEL,
                     "--detector", "full", "--log", log)
    out, err = signal_once_logging(proc, log, signal.SIGINT, after_s=0.5)
    assert proc.returncode == 0 and "Traceback" not in err
    assert len(read_rows(log)) == 2


# -- detect -----------------------------------------------------------------------------------------


def test_detect_json_schema_and_unreadable_images(tmp_path, capfd):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.jpg").write_bytes((PEOPLE / "with_mask.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    code = main(["detect", "--json", "--model", str(TINY_MODEL), "--detector", "full", str(PEOPLE / "without_mask.jpg"), str(folder)])
    out, err = capfd.readouterr()
    assert code != 0  # one image could not be read...
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["image"] for r in records] == [str(PEOPLE / "without_mask.jpg"), str(folder / "sub" / "a.jpg")]  # ...the others print
    for record in records:
        assert set(record) == {"image", "faces"}
        assert len(record["faces"]) == 1
        face = record["faces"][0]
        assert set(face) == {"box", "label", "score", "probs"}
        assert len(face["box"]) == 4 and face["box"][0] < face["box"][2] and face["box"][1] < face["box"][3]
        assert list(face["probs"]) == list(LABELS) and face["label"] in LABELS
        assert face["score"] == face["probs"][face["label"]] == max(face["probs"].values())
        assert abs(sum(face["probs"].values()) - 1) < 0.01
    # the box is in pixels of the original photo (with_mask.jpg is 256x196, its face about 121 px wide)
    x1, y1, x2, y2 = records[1]["faces"][0]["box"]
    assert 90 < x2 - x1 < 160 and 0 <= x1 and x2 <= 256 and y2 <= 196
    lines = err.strip().splitlines()
    assert lines == [f"maskwatch: warning: cannot read image: {folder / 'broken.jpg'}",
                     "maskwatch: error: 1 image could not be read"]


def test_detect_table_output(capfd):
    assert main(["detect", "--model", str(TINY_MODEL), "--detector", "full", str(PEOPLE / "with_mask.jpg")]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[0] == f"{PEOPLE / 'with_mask.jpg'}  (256x196, 1 face)" and err == ""


# -- bench ------------------------------------------------------------------------------------------


def test_bench_prints_and_writes_json(known_faces_clip, tmp_path, capfd):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--source", str(known_faces_clip["path"]), "--model", str(TINY_MODEL), "--detector", "full",
                 "--frames", "12", "--warmup", "3", "--json", str(out_json)]) == 0
    out, err = capfd.readouterr()
    report = json.loads(out_json.read_text())
    assert report["frames"] == 12 and report["resolution"] == [640, 360]
    for stage in ("decode", "detect", "classify", "track", "total"):
        assert report["stage_ms"][stage]["mean"] >= 0 and report["stage_ms"][stage]["p95"] >= report["stage_ms"][stage]["p50"]
    assert report["stage_ms"]["detect"]["mean"] > 0
    assert report["fps"] > 0 and report["peak_rss_mb"] > 50
    assert 0.5 <= report["faces_per_frame"] <= 2
    assert "fps (end to end)" in out and "peak RSS" in out and err == ""


# -- bad input: one line, non-zero, no traceback --------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.mp4").write_bytes(os.urandom(20000))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (d / "garbage.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    (d / "garbage.json").write_text(TINY_MODEL.with_suffix(".json").read_text())
    (d / "nometa.tflite").write_bytes(TINY_MODEL.read_bytes())
    (d / "bad.toml").write_text("interval_s = [1, 2\n")
    (d / "unknown.toml").write_text("intervall_s = 5\n")
    (d / "negative.toml").write_text("interval_s = -5\n")
    (d / "badoption.toml").write_text('[detector]\nmode = "retina"\n[detector.options]\ntile = 96\n')
    return d


FAST_BAD_INPUTS = {  # fail before the face detector is loaded: subprocess, about a second each
    "missing file": (["--headless", "--source", "{d}/missing.mp4"], "source not found"),
    "malformed URL": (["--headless", "--source", "rtsp://exa mple.com/live"], "malformed URL"),
    "bad port": (["--headless", "--source", "rtsp://admin:hunter2@cam.local:99999/live"], "malformed URL"),
    "unsupported scheme": (["--headless", "--source", "ftp://cam.local/live"], "unsupported URL scheme"),
    "missing model": (["--headless", "--model", "{d}/missing.tflite"], "model file not found"),
    "model without metadata": (["--headless", "--model", "{d}/nometa.tflite"], "model metadata not found"),
    "corrupt model": (["--headless", "--model", "{d}/garbage.tflite"], "cannot load model"),
    "unknown flag": (["--headless", "--frames-per-second", "3"], "unrecognized arguments"),
    "bad interval": (["--headless", "--interval", "0"], "--interval"),
    "bad detector": (["--headless", "--detector", "yolo"], "--detector"),
    "bad min score": (["--headless", "--min-score", "1.5"], "--min-score"),
    "bad TOML": (["--headless", "--config", "{d}/bad.toml"], "not valid TOML"),
    "unknown TOML key": (["--headless", "--config", "{d}/unknown.toml"], "unknown config key"),
    "bad TOML value": (["--headless", "--config", "{d}/negative.toml"], "interval_s"),
    "missing TOML": (["--headless", "--config", "{d}/nope.toml"], "config file not found"),
    "unknown detector option": (["--headless", "--config", "{d}/badoption.toml"], "mode 'retina' has no option tile"),
    "detect without paths": (["detect"], "required"),
    "bench bad frames": (["bench", "--frames", "none"], "--frames"),
}


def test_each_detector_mode_gets_its_own_default_score(tmp_path):
    from maskwatch.cli import _main_parser, build_config
    from maskwatch.config import MODE_MIN_SCORE
    from maskwatch.detection import DETECTOR_MODES

    assert set(MODE_MIN_SCORE) == set(DETECTOR_MODES)

    def config(*flags, toml=None):
        if toml is not None:
            (tmp_path / "c.toml").write_text(toml)
            flags = ("--config", str(tmp_path / "c.toml"), *flags)
        return build_config(_main_parser().parse_args(["--headless", *flags])).detector

    assert (config().mode, config().min_score) == ("retina", 0.7)
    assert config("--detector", "dense").min_score == 0.6
    assert config("--detector", "dense", "--min-score", "0.4").min_score == 0.4
    assert config(toml='[detector]\nmode = "dense"\n').min_score == 0.6
    assert config(toml='[detector]\nmode = "dense"\nmin_score = 0.5\n').min_score == 0.5
    assert config("--detector", "dense", toml='[detector]\nmode = "dense"\nmin_score = 0.5\n').min_score == 0.5
    assert config("--detector", "retina", toml='[detector]\nmode = "dense"\nmin_score = 0.5\n').min_score == 0.7  # the score was for dense
    assert config("--detector", "retina", toml='[detector]\nmode = "dense"\n').min_score == 0.7


def test_toml_detector_options_reach_the_detector(tmp_path):
    from maskwatch.cli import _main_parser, build_config
    from maskwatch.pipeline import Pipeline

    toml = tmp_path / "cam.toml"
    toml.write_text('[detector]\nmode = "retina"\nmin_score = 0.6\n[detector.options]\nmax_pixels = 942080\n')
    config = build_config(_main_parser().parse_args(["--headless", "--config", str(toml), "--model", str(TINY_MODEL)]))
    assert config.detector.options == {"max_pixels": 942080}
    with Pipeline(config) as pipeline:  # the demo clip
        assert pipeline.detector.options["max_pixels"] == 942080 and pipeline.detector.min_score == 0.6
        assert pipeline.detector._backend.input_size(1920, 1080)[:2] == (1294, 728)


@pytest.mark.parametrize("case", sorted(FAST_BAD_INPUTS))
def test_bad_input_is_one_line(case, bad_files):
    args, fragment = FAST_BAD_INPUTS[case]
    r = run_cli(*[a.format(d=bad_files) for a in args], timeout=30)
    assert r.returncode != 0
    assert_one_line_error(r.stderr, fragment)
    assert "hunter2" not in r.stderr + r.stdout


SLOW_BAD_INPUTS = {  # need the face detector loaded first: in-process
    "corrupt video": (["--headless", "--source", "{d}/corrupt.mp4"], "cannot open video"),
    "unreadable image": (["--headless", "--source", "{d}/broken.jpg"], "broken.jpg"),
    "unreachable URL": (["--headless", "--source", "rtsp://admin:hunter2@127.0.0.1:9/live", "--max-reconnects", "0"], "cannot open rtsp://admin:***@127.0.0.1:9/live"),
    "bench on a missing file": (["bench", "--source", "{d}/missing.mp4"], "source not found"),
    "missing webcam": (["--headless", "--source", "7"], "cannot open webcam 7"),
}


@pytest.mark.parametrize("case", sorted(SLOW_BAD_INPUTS))
def test_bad_input_needing_the_detector_is_one_line(case, bad_files, tmp_path, capfd):
    args, fragment = SLOW_BAD_INPUTS[case]
    log = tmp_path / "counts.csv"
    code = main([a.format(d=bad_files) for a in args] + ["--model", str(TINY_MODEL)]
                + (["--log", str(log)] if args[0] == "--headless" else []))
    out, err = capfd.readouterr()
    assert code != 0
    assert_one_line_error(err, fragment)
    assert "hunter2" not in out + err


def test_corrupt_video_in_a_subprocess_exits_cleanly(bad_files):
    """The whole process, interpreter shutdown included, prints the one line and nothing else."""
    r = run_cli("--headless", "--source", bad_files / "corrupt.mp4", "--model", TINY_MODEL)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "cannot open video")


def test_no_display_for_the_desktop_app(monkeypatch):
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    r = run_cli("--model", TINY_MODEL)
    assert r.returncode != 0
    assert_one_line_error(r.stderr, "--headless")


def test_save_video_without_headless_is_an_error_not_silently_dropped(monkeypatch, tmp_path):
    """Regression: ``maskwatch --save-video x.mp4`` opened the desktop app and recorded nothing."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # a display: the app could start
    r = run_cli("--model", TINY_MODEL, "--save-video", tmp_path / "x.mp4", timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "--save-video is for --headless runs", "Record")
    assert list(tmp_path.iterdir()) == []


def test_unexpected_errors_are_one_line_and_exit_1(monkeypatch, capfd, known_faces_clip):
    import maskwatch.monitor

    def boom(self):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(maskwatch.monitor.Monitor, "run", boom)
    code = main(["--headless", "--source", str(known_faces_clip["path"]), "--model", str(TINY_MODEL)])
    out, err = capfd.readouterr()
    assert code == 1
    assert_one_line_error(err, "unexpected ZeroDivisionError", "--debug")
    monkeypatch.setenv("MASKWATCH_DEBUG", "1")
    assert main(["--headless", "--source", str(known_faces_clip["path"]), "--model", str(TINY_MODEL)]) == 1
    assert "Traceback" in capfd.readouterr().err


# -- outputs, signals, intervals (issue 8 hardening) ---------------------------------------------


COLLIDING_OUTPUTS = {  # name: (flags, TOML or None, the error's fragment)
    "--log X --events X": (["--log", "{d}/x.out", "--events", "{d}/x.out"], None, "log and events are the same file"),
    "TOML log = events": ([], 'log = "{d}/x.out"\nevents = "{d}/x.out"\n', "log and events are the same file"),
    "TOML log, flag --events": (["--events", "{d}/sub/../x.out"], 'log = "{d}/x.out"\n', "log and events are the same file"),
    "--save-video = --log": (["--log", "{d}/v.mp4", "--save-video", "{d}/v.mp4"], None, "log and save_video are the same file"),
    "--log inside --snapshots": (["--log", "{d}/snaps/c.csv", "--snapshots", "{d}/snaps"], None, "inside the snapshots folder"),
    "--save-video: unknown extension": (["--save-video", "{d}/v.gif"], None, "unknown extension '.gif'"),
    "--save-video: missing folder": (["--save-video", "{d}/nope/v.mp4"], None, "does not exist"),
}


@pytest.mark.parametrize("case", sorted(COLLIDING_OUTPUTS))
def test_colliding_or_bad_outputs_are_one_line_exit_2_and_nothing_written(case, tmp_path):
    """Regression: ``--log X --events X`` wrote JSON lines into the CSV and exited 0."""
    flags, toml, fragment = COLLIDING_OUTPUTS[case]
    (tmp_path / "sub").mkdir()
    args = ["--headless", "--model", TINY_MODEL, *(f.format(d=tmp_path) for f in flags)]
    if toml is not None:
        (tmp_path / "sub" / "c.toml").write_text(toml.format(d=tmp_path))
        args += ["--config", tmp_path / "sub" / "c.toml"]
    r = run_cli(*args, timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, fragment)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        (["sub", "sub/c.toml"] if toml is not None else ["sub"])  # nothing written


def test_save_video_never_overwrites(tmp_path):
    video = tmp_path / "out.mp4"
    video.write_bytes(b"yesterday's recording")
    r = run_cli("--headless", "--model", TINY_MODEL, "--save-video", video, timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "exists; not overwriting it")
    assert video.read_bytes() == b"yesterday's recording"


FOREIGN_OUTPUTS = {  # name: (flags, the error's fragment); {csv} is yesterday's CSV log, {clip} the source
    "--events yesterday's CSV": (["--events", "{csv}"], "is not a JSON-lines event log"),
    "--events the source clip": (["--source", "{clip}", "--events", "{clip}"], "is the source being watched"),
    "--log the source clip": (["--source", "{clip}", "--log", "{clip}"], "is the source being watched"),
    "--save-video the source clip": (["--source", "{clip}", "--save-video", "{clip}"], "is the source being watched"),
    "--log an event log": (["--log", "{jsonl}"], "exists with a different header"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN_OUTPUTS))
def test_outputs_are_never_appended_to_a_file_of_another_kind(case, tmp_path):
    """Regression: ``--events counts.csv`` (yesterday's CSV) or ``--events clip.mp4`` (the source
    itself) got JSON lines appended, exit 0."""
    files = {"csv": tmp_path / "counts.csv", "clip": tmp_path / "clip.mp4", "jsonl": tmp_path / "events.jsonl"}
    files["csv"].write_text(",".join(CSV_COLUMNS) + "\n")
    files["clip"].write_bytes((REPO / "tests" / "fixtures" / "clip_320x240.mp4").read_bytes())
    files["jsonl"].write_text('{"kind":"person_seen"}\n')
    before = {name: path.read_bytes() for name, path in files.items()}
    flags, fragment = FOREIGN_OUTPUTS[case]
    r = run_cli("--headless", "--model", TINY_MODEL, *(f.format(**files) for f in flags), timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, fragment)
    assert {name: path.read_bytes() for name, path in files.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files.values())


def wait_for_signal_handlers(proc, signals=(signal.SIGINT, signal.SIGTERM), timeout: float = 60.0) -> None:
    """Wait until ``proc`` catches ``signals`` (the ``SigCgt`` mask in ``/proc/<pid>/status``): the
    moment ``maskwatch`` has installed its handlers, whatever the machine's load."""
    status = f"/proc/{proc.pid}/status"
    if not os.path.exists(status):  # no procfs: give the interpreter time to start
        time.sleep(3.0)
        return
    wanted = sum(1 << (sig - 1) for sig in signals)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with open(status) as fh:
            caught = next((int(line.split()[1], 16) for line in fh if line.startswith("SigCgt:")), 0)
        if caught & wanted == wanted:
            return
        time.sleep(0.005)
    raise AssertionError(f"the handlers for {signals} were never installed (exit {proc.poll()})")


@pytest.mark.parametrize("sig,after_s", [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.0), (signal.SIGTERM, 0.5)])
def test_a_signal_during_start_up_is_a_clean_exit_0(sig, after_s, tmp_path):
    """Regression: SIGINT in the first ~0.2 s printed a traceback, SIGTERM in the first ~0.5 s exited 143.
    The signal is sent once the handlers are in place (the first thing ``main`` does; before that
    the interpreter itself is starting), at once or half a second later (models still loading)."""
    proc = start_cli("--headless", "--model", TINY_MODEL, "--detector", "full", "--log", tmp_path / "counts.csv")
    try:
        wait_for_signal_handlers(proc)
        time.sleep(after_s)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err == ""
    assert out.strip().splitlines()[-1].startswith("total: people ")
    log = tmp_path / "counts.csv"
    if log.exists():  # stopped after the models loaded: the header, and the partial row if there was one
        rows = read_rows(log)
        assert rows[0] == list(CSV_COLUMNS) and len(rows) <= 2


def test_sigterm_finalises_the_video(tmp_path):
    log, video = tmp_path / "counts.csv", tmp_path / "out.mp4"
    proc = start_cli("--headless", "--realtime", "--quiet", "--source", demo_clip(), "--model", TINY_MODEL,
                     "--detector", "full", "--log", log, "--save-video", video)
    out, err = signal_once_logging(proc, log, signal.SIGTERM, after_s=1.5)
    assert proc.returncode == 0 and err == ""
    import cv2

    rows = read_rows(log)
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(cv2.VideoCapture(str(demo_clip())).get(cv2.CAP_PROP_FPS), abs=0.01)
    assert cap.read()[0]  # a playable file: the MP4 was finalised
    cap.release()
    assert len(rows) == 2 and frames == int(rows[1][2]) >= 1  # every processed frame, no more


@pytest.mark.parametrize("second", ["right after the first", "while the last row is written"])
def test_a_second_sigterm_never_leaves_half_written_files(second, tmp_path):
    """Regression: a second SIGTERM (or Ctrl-C) raised KeyboardInterrupt inside the monitor's
    sink-closing loop: the sinks after the current one were never closed (an unplayable MP4)."""
    log, video = tmp_path / "counts.csv", tmp_path / "out.mp4"
    proc = start_cli("--headless", "--realtime", "--quiet", "--source", demo_clip(), "--model", TINY_MODEL,
                     "--detector", "full", "--log", log, "--save-video", video)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # models loaded, source open, frames flowing
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        if second == "right after the first":
            time.sleep(0.02)
        else:  # the monitor is finishing: the last interval is in the CSV, the video is being closed
            while len(read_rows(log)) < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # 0: the second signal came while finishing (ignored); 130: during the run (stop waiting);
    # -SIGTERM: after main() returned and put the default handlers back. The files are whole in each case.
    assert proc.returncode in (0, 130, -signal.SIGTERM), err
    assert "Traceback" not in err
    rows = read_rows(log)
    assert len(rows) == 2 and int(rows[1][2]) >= 1  # the last (partial) interval
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "out.mp4"]  # no temporary video left
    import cv2

    cap = cv2.VideoCapture(str(video))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == int(rows[1][2])  # finalised: every frame
    cap.release()


@requires_rtsp_server
def test_sigterm_during_an_outage_writes_the_last_partial_interval(known_faces_clip, tmp_path):
    """Regression: SIGTERM while the camera was away (reconnecting) lost the last partial row."""
    from rtsp import RtspServer

    log, config = tmp_path / "counts.csv", tmp_path / "fast.toml"
    config.write_text("[sources]\nopen_timeout_s = 4.0\nread_timeout_s = 2.0\nstall_timeout_s = 1.5\n"
                      "backoff_initial_s = 0.3\nbackoff_max_s = 1.0\n")
    server = RtspServer(known_faces_clip["path"]).start()
    proc = start_cli("--headless", "--source", server.url, "--model", TINY_MODEL, "--detector", "full",
                     "--interval", "2", "--log", log, "--config", config)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and len(read_rows(log)) >= 2) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # a live row
        server.stop()  # the camera loses power and stays away
        deadline = time.monotonic() + 30
        while not any(r[2] == "0" for r in read_rows(log)[1:]) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # a whole interval of outage logged: the next one is open, without frames
        time.sleep(1.0)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        server.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    rows = read_rows(log)[1:]
    starts = [datetime.fromisoformat(r[0]).timestamp() for r in rows]
    ends = [datetime.fromisoformat(r[1]).timestamp() for r in rows]
    assert all(e == s for e, s in zip(ends, starts[1:]))  # contiguous
    last = rows[-1]
    assert last[CSV_COLUMNS.index("source_state")] == "reconnecting" and last[2] == "0"
    # (the log's times are whole seconds, so a partial 2 s interval can read as 2 s long)
    assert 0 < ends[-1] - starts[-1] <= 2 and abs(ends[-1] - sent) < 1.5  # it reaches the shutdown
    assert "Traceback" not in err


def test_interval_under_a_second_and_save_video(known_faces_clip, tmp_path, capfd):
    """Regression: ``--interval 0.5`` wrote repeated one-second start times. And ``--save-video``
    writes every frame, with the overlay, at the clip's frame rate."""
    log, video = tmp_path / "counts.csv", tmp_path / "out.mp4"
    assert main(["--headless", "--quiet", "--source", str(known_faces_clip["path"]), "--model", str(TINY_MODEL),
                 "--detector", "full", "--interval", "0.5", "--log", str(log), "--save-video", str(video)]) == 0
    rows = read_rows(log)[1:]
    starts = [datetime.fromisoformat(r[0]).timestamp() for r in rows]
    assert len(rows) == 10 and len(set(r[0] for r in rows)) == 10  # 5 s of media, 0.5 s rows, all distinct
    assert [round(b - a, 3) for a, b in zip(starts, starts[1:])] == [0.5] * 9
    assert "." in rows[0][0][19:23]  # millisecond times
    import cv2

    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == known_faces_clip["frames"]
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(known_faces_clip["fps"], abs=0.01)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 20)
    ok, frame = cap.read()
    cap.release()
    source = cv2.VideoCapture(str(known_faces_clip["path"]))
    source.set(cv2.CAP_PROP_POS_FRAMES, 20)
    _, original = source.read()
    source.release()
    assert ok and np.abs(frame.astype(int) - original.astype(int)).max() > 100  # a box drawn on the face
    out, err = capfd.readouterr()
    assert err == "" and out.startswith("total: ")


@requires_shipped_model
def test_headless_alerts_go_to_stderr_and_the_event_log(known_faces_clip, tmp_path, capfd):
    events = tmp_path / "events.jsonl"
    assert main(["--headless", "--source", str(known_faces_clip["path"]), "--interval", "60",
                 "--events", str(events)]) == 0  # the shipped model: person B has no mask
    _, err = capfd.readouterr()
    alerts = [line for line in err.splitlines() if line.startswith("maskwatch: alert: ")]
    assert len(alerts) == len(err.splitlines()) == 3
    assert alerts[0].endswith(" without a mask") and "Compliance fell to 50%" in alerts[1]
    assert "Interval compliance 50% is under 80%" in alerts[2]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    decided = [r for r in records if r["kind"] == "label_decided" and r["label"] == "without_mask"]
    person = [r for r in records if r["kind"] == "alert" and r["alert"] == "without_mask"]
    assert len(person) == len(decided) == 1
    assert (person[0]["track_id"], person[0]["frame_index"], person[0]["time"]) == \
        (decided[0]["track_id"], decided[0]["frame_index"], decided[0]["time"])
    assert records.index(person[0]) == records.index(decided[0]) + 1  # right after the decision
    assert [r["alert"] for r in records if r["kind"] == "alert"] == ["without_mask", "compliance", "interval_compliance"]
