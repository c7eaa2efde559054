"""``maskwatch serve`` as a real process: worker processes per camera on a real RTSP camera (GStreamer,
tests/support/rtsp.py), the SQLite history database, a real Mosquitto broker (tests/support/services.py).

- a worker killed with SIGKILL is restarted (logged, counted) and its camera's rows continue;
- SIGHUP reloads every camera's model; SIGTERM stops everything with exit 0, each camera writing
  its last partial interval; every interval row in the database arrived on
  ``<prefix>/<camera>/intervals``; no worker outlives the supervisor; the camera password is
  never printed;
- a camera whose file cannot be read is reported once and not restarted;
- two ``serve`` processes (two "hosts") and one ``maskwatch aggregate``: the aggregate database
  has every row of both exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY_MODEL, cli_env, run_cli, start_cli
from maskwatch.site.history import History
from rtsp import FIXTURES, RtspServer, requires_rtsp_server

PASSWORD = "s3rve-Pa55word"


class Output:
    """A process's stderr, read line by line in a thread (so the pipe never fills)."""

    def __init__(self, proc) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def find(self, pattern: str) -> list[re.Match]:
        return list(re.finditer(pattern, self.text()))

    def join(self) -> None:
        self._thread.join(timeout=10)


def wait_for(predicate, timeout: float, proc, what: str, output: Output) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (serve exit {proc.poll()}); log:\n{output.text()[-3000:]}")


def rows(db: Path, camera: str | None = None) -> list[dict]:
    if not db.exists():
        return []
    history = History(db)
    try:
        return history.intervals(camera=camera)
    finally:
        history.close()


def live_rows(db: Path, camera: str) -> list[dict]:
    return [r for r in rows(db, camera) if r["frames"] > 0]


def site_toml(path: Path, cameras: dict[str, str], *, interval: float = 1.0, mqtt=None, db: str = "site.db",
              extra: str = "", camera_keys: dict[str, str] | None = None) -> Path:
    text = f"""
[defaults]
interval_s = {interval}
model = "{TINY_MODEL}"
detector.every_n = 3
sources = {{ open_timeout_s = 5.0, read_timeout_s = 3.0, stall_timeout_s = 3.0, backoff_initial_s = 0.3, backoff_max_s = 1.0 }}

[db]
url = "{db}"

[serve]
restart_backoff_initial_s = 0.5
restart_backoff_max_s = 2
stop_timeout_s = 30
{extra}
"""
    for name, source in cameras.items():
        text += f'\n[[cameras]]\nname = "{name}"\nsource = "{source}"\n'
        if source.startswith("rtsp://"):
            text += 'password_env = "MW_TEST_SERVE_PW"\n'
        text += (camera_keys or {}).get(name, "")
    if mqtt is not None:
        text += f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt.port}\nprefix = "site"\ndiscovery = false\n'
    path.write_text(text)
    return path


def stop(proc, output: Output, timeout: float = 60) -> tuple[str, int]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout)
    output.join()
    return out, proc.returncode


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def camera():
    """An RTSP camera with a password (the looping 320x240 clip); both test cameras watch it."""
    server = RtspServer(FIXTURES / "clip_320x240.mp4", user="admin", password=PASSWORD).start()
    yield server
    server.stop()


@requires_rtsp_server
def test_killed_worker_is_restarted_and_sigterm_stops_every_camera(tmp_path, camera, mosquitto, monkeypatch):
    from services import MqttRecorder

    monkeypatch.setenv("MW_TEST_SERVE_PW", PASSWORD)
    url = camera.url.replace(f"admin:{PASSWORD}@", "admin@")
    config = site_toml(tmp_path / "site.toml", {"door": url, "hall": url}, interval=2.0, mqtt=mosquitto,
                       camera_keys={"door": 'save_video = "videos/door.avi"\nblur_faces = "all"\n'})
    (tmp_path / "videos").mkdir()
    db = tmp_path / "site.db"
    recorder = MqttRecorder(mosquitto, "site/#").connect()
    proc = start_cli("serve", "--config", config, cwd=tmp_path)
    output = Output(proc)
    try:
        for name in ("door", "hall"):
            wait_for(lambda: len(live_rows(db, name)) >= 2, 120, proc, f"{name}: two live rows", output)
        door_pid = int(output.find(r"door: worker started \(pid (\d+)\)")[0].group(1))
        hall_pid = int(output.find(r"hall: worker started \(pid (\d+)\)")[0].group(1))
        assert alive(door_pid) and alive(hall_pid)

        os.kill(door_pid, signal.SIGKILL)  # the OOM killer, say
        killed_at = time.time()
        wait_for(lambda: output.find(r"door: warning: worker died \(killed by SIGKILL\) after [\d.]+ s; restart 1 in "),
                 20, proc, "the death logged", output)
        wait_for(lambda: output.find(r"door: worker restarted \(restart 1\) \(pid \d+\)"), 20, proc, "restarted", output)
        new_pid = int(output.find(r"door: worker restarted \(restart 1\) \(pid (\d+)\)")[0].group(1))
        assert new_pid != door_pid and alive(hall_pid)  # the other camera never noticed
        wait_for(lambda: len([r for r in live_rows(db, "door") if r["start_ts"] > killed_at]) >= 2, 120, proc,
                 "door's rows after the restart", output)
        recorder.wait_for(lambda r: r.on("site/door/state")[-1:] == ["live"], 30, "door live again")
        assert "reconnecting" in recorder.on("site/door/state")

        os.kill(proc.pid, signal.SIGHUP)  # a new model copied over the old one: reload it
        wait_for(lambda: len(output.find(r"(door|hall): mask classifier .* loaded from")) >= 2, 60, proc,
                 "both cameras reloaded the model", output)

        time.sleep(1.0)  # into an interval: the last one is partial
        stopped_at = time.time()
        out, code = stop(proc, output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        recorder_messages = recorder.snapshot()
        recorder.close()

    log = output.text()
    assert code == 0, log
    assert PASSWORD not in log + out
    assert not alive(new_pid) and not alive(hall_pid)  # no worker outlives serve
    summary = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert re.search(r"interval rows?, .* 1 restart, stopped", summary["door"]), out
    assert re.search(r"interval rows?, .* 0 restarts, stopped", summary["hall"]), out
    # the restarted worker recorded its own file (the killed one left only its hidden temporary file)
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir() if not p.name.startswith("."))
    assert len(videos) == 1 and re.fullmatch(r"door-\d{8}T\d{6}\.avi", videos[0]), videos
    for name in ("door", "hall"):
        last = rows(db, name)[-1]
        # the final partial interval: written at SIGTERM, shorter than the 2 s interval
        assert last["end_ts"] >= stopped_at - 0.5 and last["end_ts"] - last["start_ts"] < 2.0, last
    # every row of the database went to the broker (QoS 1, drained before serve said offline)
    published = {json.loads(p)["id"] for t, p, _ in recorder_messages if t.endswith("/intervals")}
    stored = {r["id"] for r in rows(db)}
    assert stored <= published, f"{len(stored - published)} rows never published"
    for t, p, _ in recorder_messages:
        if t.endswith("/intervals"):
            assert t == f"site/{json.loads(p)['camera']}/intervals"
    states = [p for t, p, _ in recorder_messages if t == "site/hall/state"]
    assert states[-1] == "ended" and "live" in states


def test_a_camera_that_cannot_work_is_reported_once_and_not_restarted(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    config = site_toml(tmp_path / "site.toml", {"bad": str(broken), "good": str(FIXTURES / "clip_320x240.mp4")})
    result = run_cli("serve", "--config", config, timeout=180, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # every camera ended, one of them failed
    errors = [line for line in result.stderr.splitlines() if line.startswith("maskwatch serve: bad: error:")]
    assert len(errors) == 2, result.stderr  # the reason once, then "not restarted"
    assert "not restarted" in errors[1]
    assert "worker restarted" not in result.stderr and "restart 1" not in result.stderr
    assert "good: source ended; camera done" in result.stderr
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines()}
    assert "0 restarts, failed: " in lines["bad"] and "source ended" in lines["good"]
    assert len(rows(tmp_path / "site.db", "good")) >= 2 and rows(tmp_path / "site.db", "bad") == []


@requires_rtsp_server
def test_two_serve_hosts_and_one_aggregate_store_every_row_once(tmp_path, camera, mosquitto, monkeypatch):
    monkeypatch.setenv("MW_TEST_SERVE_PW", PASSWORD)
    url = camera.url.replace(f"admin:{PASSWORD}@", "admin@")
    hosts = []
    aggregate_toml = site_toml(tmp_path / "aggregate.toml", {"unused": "x.mp4"}, mqtt=mosquitto, db="aggregate.db")
    aggregate = start_cli("aggregate", "--config", aggregate_toml, "--debug", cwd=tmp_path)  # --debug: its info lines
    aggregate_output = Output(aggregate)
    try:
        # subscribed before the hosts publish (it keeps a persistent session afterwards anyway): its log says so
        wait_for(lambda: aggregate_output.find(r"aggregate: subscribed to site/\+/intervals"), 60, aggregate,
                 "the aggregate's subscription", aggregate_output)
        for host, name in (("east", "entrance"), ("west", "corridor")):
            folder = tmp_path / host
            folder.mkdir()
            config = site_toml(folder / "site.toml", {name: url}, mqtt=mosquitto)
            # each in its own process group, like a terminal's: Ctrl-C reaches the workers too
            proc = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--config", str(config)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                                    cwd=folder, start_new_session=True)
            hosts.append((proc, Output(proc), folder / "site.db", name))
        for proc, output, db, name in hosts:
            wait_for(lambda: len(live_rows(db, name)) >= 3, 150, proc, f"{name}: rows", output)
        east, west = hosts
        interrupted_at = time.time()
        os.killpg(east[0].pid, signal.SIGINT)  # Ctrl-C in east's terminal: every process of the group gets it
        east[0].communicate(timeout=60)
        east[1].join()
        assert east[0].returncode == 0 and "Traceback" not in east[1].text(), east[1].text()
        assert rows(east[2], "entrance")[-1]["end_ts"] >= interrupted_at - 0.5  # its last partial row was written
        _, code = stop(west[0], west[1])
        assert code == 0, west[1].text()
        expected = {r["id"]: r for _, _, db, name in hosts for r in rows(db, name)}
        aggregate_db = tmp_path / "aggregate.db"
        wait_for(lambda: {r["id"] for r in rows(aggregate_db)} >= set(expected), 30, aggregate,
                 "every row in the aggregate database", aggregate_output)
        _, code = stop(aggregate, aggregate_output)
        assert code == 0, aggregate_output.text()
    finally:
        for proc, *_ in hosts:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if aggregate.poll() is None:
            aggregate.kill()
            aggregate.communicate()
    stored = rows(tmp_path / "aggregate.db")
    ids = [r["id"] for r in stored]
    assert len(ids) == len(set(ids)) == len(expected)  # every row, once
    assert {r["camera"] for r in stored} == {"entrance", "corridor"}
    for row in stored:
        assert row == expected[row["id"]]


@requires_rtsp_server
def test_a_camera_down_at_start_is_retried_with_backoff_its_reason_logged_once_and_picked_up(tmp_path, monkeypatch):
    """A camera that is down when serve starts is retried by its worker (the source's capped
    exponential backoff, as after a drop), says why once rather than on every retry, and is counted
    as soon as it comes up, without a worker restart."""
    from services import free_port

    monkeypatch.setenv("MW_TEST_SERVE_PW", PASSWORD)
    port = free_port()
    url = f"rtsp://admin@127.0.0.1:{port}/live"  # nobody listens there yet
    config = site_toml(tmp_path / "site.toml", {"gate": url})
    config.write_text(config.read_text().replace("open_timeout_s = 5.0", "open_timeout_s = 1.0"))
    db = tmp_path / "site.db"
    proc = start_cli("serve", "--config", config, cwd=tmp_path)
    output = Output(proc)
    server = RtspServer(FIXTURES / "clip_320x240.mp4", port=port, user="admin", password=PASSWORD, path="/live")
    try:
        wait_for(lambda: output.find(r"gate: warning: .*connection refused"), 60, proc, "the reason", output)
        time.sleep(6)  # several retries (0.3 s doubling to 1 s)
        assert len(output.find(r"gate: warning: .*connection refused")) == 1, output.text()
        assert live_rows(db, "gate") == []
        server.start()
        wait_for(lambda: live_rows(db, "gate"), 90, proc, "counted once the camera is up", output)
        out, code = stop(proc, output)
    finally:
        server.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log = output.text()
    assert code == 0, log
    assert "restart" not in log, log  # the worker never failed: the source retried
    assert PASSWORD not in log + out
    assert not output.find(r"gate: error: "), log


class _DeadProcess:
    """What the supervisor reads of a worker process that has exited."""

    def __init__(self, exitcode: int) -> None:
        self.exitcode = exitcode

    def join(self) -> None:
        pass


def test_restart_backoff_doubles_to_its_cap_and_starts_over_after_a_long_run(tmp_path):
    from maskwatch.site.config import SiteConfig
    from maskwatch.site.serve import EXIT_PERMANENT, Supervisor

    config = site_toml(tmp_path / "site.toml", {"cam": "x.mp4"})
    supervisor = Supervisor(SiteConfig.load(config))
    worker = supervisor.workers[0]
    waits = []
    for ran in (1.0, 1.0, 1.0, 1.0, 120.0, 1.0):  # [serve]: 0.5 s doubling to 2 s, reset after 60 s of running
        worker.process, worker.started = _DeadProcess(-9), time.monotonic() - ran
        before = time.monotonic()
        supervisor._reap(worker, stopping=False)
        waits.append(round(worker.restart_at - before, 1))
    assert waits == [0.5, 1.0, 2.0, 2.0, 0.5, 1.0]
    assert worker.restarts == 6 and not worker.done and worker.state == "reconnecting"
    worker.process, worker.restart_at = _DeadProcess(EXIT_PERMANENT), None
    worker.last_error = "cannot read video x.mp4"
    supervisor._reap(worker, stopping=False)
    assert worker.done and worker.restart_at is None and worker.how_ended == "failed: cannot read video x.mp4"
    assert worker.state == "ended"


# -- a camera that cannot work, a database that is away, nobody in view after the end ------------------


def _camera_config(tmp_path, source: str, **keys):
    from maskwatch.site.config import SiteConfig

    extra = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    config = site_toml(tmp_path / "site.toml", {"cam": source}, camera_keys={"cam": extra})
    return SiteConfig.load(config).cameras[0].config


def test_a_network_camera_with_a_broken_model_is_permanent_not_restarted_forever(tmp_path, monkeypatch):
    from services import free_port

    from maskwatch.site.messages import WorkerError
    from maskwatch.site.serve import EXIT_PERMANENT, _worker_run

    monkeypatch.setenv("MW_TEST_SERVE_PW", PASSWORD)
    (tmp_path / "broken.tflite").write_bytes(b"not a model at all" * 50)
    config = _camera_config(tmp_path, f"rtsp://admin@127.0.0.1:{free_port()}/live", model="broken.tflite")
    sent = []
    code = _worker_run("cam", config, str(tmp_path / "site.db"), sent.append, {"stop": False}, 5.0)
    assert code == EXIT_PERMANENT  # was EXIT_RETRY: restarted with backoff for ever
    errors = [m for m in sent if isinstance(m, WorkerError)]
    assert len(errors) == 1 and errors[0].permanent and "broken." in errors[0].text, sent


def test_serve_reports_a_network_cameras_broken_model_once_and_does_not_restart_it(tmp_path, monkeypatch):
    from services import free_port

    monkeypatch.setenv("MW_TEST_SERVE_PW", PASSWORD)
    (tmp_path / "broken.tflite").write_bytes(b"not a model at all" * 50)
    url = f"rtsp://admin@127.0.0.1:{free_port()}/live"
    config = site_toml(tmp_path / "site.toml", {"gate": url}, camera_keys={"gate": 'model = "broken.tflite"\n'})
    result = run_cli("serve", "--config", config, timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("maskwatch serve: gate: error:")]
    assert len(errors) == 2 and "broken." in errors[0] and "not restarted" in errors[1], result.stderr
    assert "restart 1" not in result.stderr and PASSWORD not in result.stderr + result.stdout


def test_a_database_away_when_a_worker_starts_is_retried_not_permanent(tmp_path):
    """A file camera's worker restarted while PostgreSQL restarts: History() fails; that passes."""
    from services import free_port

    from maskwatch.site.messages import WorkerError
    from maskwatch.site.serve import EXIT_RETRY, _worker_run

    config = _camera_config(tmp_path, str(FIXTURES / "clip_320x240.mp4"))
    sent = []
    db_url = f"postgresql+psycopg://mw:s3cret-db@127.0.0.1:{free_port()}/site"  # nobody listens there
    code = _worker_run("cam", config, db_url, sent.append, {"stop": False}, 5.0)
    assert code == EXIT_RETRY  # was EXIT_PERMANENT: the camera was given up
    errors = [m for m in sent if isinstance(m, WorkerError)]
    assert len(errors) == 1 and not errors[0].permanent and "s3cret-db" not in errors[0].text, sent


def test_nobody_is_in_view_once_a_worker_ends_or_serve_stops(tmp_path, mosquitto):
    from services import retained

    from maskwatch import LABELS
    from maskwatch.site.config import SiteConfig
    from maskwatch.site.messages import InView
    from maskwatch.site.publisher import MqttPublisher
    from maskwatch.site.serve import Supervisor

    config = site_toml(tmp_path / "site.toml", {"door": "a.mp4", "hall": "b.mp4"}, mqtt=mosquitto)
    supervisor = Supervisor(SiteConfig.load(config))
    supervisor.publisher = MqttPublisher(supervisor.site.mqtt, None, ["door", "hall"]).start()
    try:
        door, hall = supervisor.workers
        for worker in (door, hall):
            supervisor._handle(worker, InView(worker.name, {"with_mask": 2, "without_mask": 1,
                                                            "mask_worn_incorrectly": 0}))
        deadline = time.monotonic() + 20
        while retained(mosquitto, "site/+/with_mask", settle=0.3) != {"site/door/with_mask": "2",
                                                                        "site/hall/with_mask": "2"}:
            assert time.monotonic() < deadline, "the in-view counts never reached the broker"
        door.process, door.started = _DeadProcess(0), time.monotonic()  # door's file ended
        supervisor._reap(door, stopping=False)
        door_values = {f"site/door/{label}": "0" for label in LABELS}
        deadline = time.monotonic() + 20
        while {t: v for t, v in retained(mosquitto, "site/door/#", settle=0.3).items() if t in door_values} != door_values:
            assert time.monotonic() < deadline, retained(mosquitto, "site/door/#")
        assert retained(mosquitto, "site/hall/with_mask")["site/hall/with_mask"] == "2"  # hall still sees them
        supervisor._shutdown()  # SIGTERM: every camera ends (hall has no process here)
    finally:
        supervisor.publisher.close()
    values = retained(mosquitto, "site/#")
    for camera in ("door", "hall"):
        assert {label: values.get(f"site/{camera}/{label}") for label in LABELS} == {label: "0" for label in LABELS}
        assert values[f"site/{camera}/state"] == "ended"


def test_a_worker_that_cannot_import_its_runtime_says_so_in_one_line_and_is_not_restarted():
    """The spawn entry (maskwatch.site.spawn) imports the worker inside a try: a broken install is a
    permanent WorkerError line, not a child's traceback and a restart every few seconds."""
    code = """
import os, sys
from multiprocessing import Pipe
from maskwatch.site.spawn import worker_process
receive, send = Pipe(duplex=False)
pid = os.fork()
if pid == 0:
    sys.modules["maskwatch.site.worker"] = None  # as a broken install: importing it raises ImportError
    worker_process("gate", None, "sqlite://", send, False)
send.close()
message = receive.recv()
_, status = os.waitpid(pid, 0)
print(type(message).__name__, message.camera, message.permanent, os.waitstatus_to_exitcode(status))
print(message.text)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, text = out.stdout.splitlines()
    from maskwatch.site.messages import EXIT_PERMANENT

    assert first == f"WorkerError gate True {EXIT_PERMANENT}"
    assert text.startswith("cannot start the camera's worker: ModuleNotFoundError") and out.stderr == ""
