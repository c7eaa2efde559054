"""``maskwatch aggregate`` as a subprocess against a real Mosquitto broker: rows once each, restarts lose nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import run_cli, start_cli
from maskwatch.frames import SourceState
from maskwatch.results import Event, IntervalSummary
from maskwatch.site.history import History, event_payload, interval_payload

T0 = 1_760_000_000.0


def interval(camera: str, i: int) -> dict:
    return interval_payload(camera, IntervalSummary(
        start=T0 + 60 * i, end=T0 + 60 * (i + 1), frames=300, faces=12, people_seen=2,
        by_label={"with_mask": 1, "without_mask": 1, "mask_worn_incorrectly": 0}, fps=5.0, dropped_frames=0,
        source_state=SourceState.LIVE))


def event(camera: str, track: int) -> dict:
    return event_payload(camera, Event("person_seen", track, T0 + track, track))


def site_toml(tmp_path: Path, broker, extra: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n{extra}\n'
                    '[db]\nurl = "aggregate.db"\n\n'
                    '[[cameras]]\nname = "unused_here"\nsource = "rtsp://camera.invalid/live"\n')
    return path


class Publisher:
    """A plain paho client standing in for the serve processes of other hosts."""

    def __init__(self, broker) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload) -> None:
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        self.client.publish(topic, body, qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rows(db: Path) -> tuple[list[dict], list[dict]]:
    with History(db) as h:
        return h.intervals(), h.events()


def wait_rows(db: Path, intervals: int, events: int, timeout: float = 30.0) -> tuple[list[dict], list[dict]]:
    deadline = time.monotonic() + timeout
    got = ([], [])
    while time.monotonic() < deadline:
        if db.exists():
            got = rows(db)
            if len(got[0]) >= intervals and len(got[1]) >= events:
                return got
        time.sleep(0.2)
    raise AssertionError(f"timed out: {len(got[0])}/{intervals} intervals, {len(got[1])}/{events} events")


def wait_subscribed(publisher: Publisher, db: Path, camera: str = "probe") -> None:
    """Publish probe rows until one is stored: then the aggregate's subscription is in place."""
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        publisher.send(f"maskwatch/{camera}/intervals", interval(camera, i))
        i += 1
        time.sleep(0.3)
        if db.exists() and any(r["camera"] == camera for r in rows(db)[0]):
            return
    raise AssertionError("the aggregate never stored a probe row")


def stop(proc, timeout: float = 20.0) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_aggregate_stores_each_row_once_skips_malformed_and_exits_0_on_sigterm(tmp_path, mosquitto):
    config = site_toml(tmp_path, mosquitto)
    db = tmp_path / "aggregate.db"
    proc = start_cli("aggregate", "--config", config)
    publisher = Publisher(mosquitto)
    try:
        wait_subscribed(publisher, db)
        probes = len(rows(db)[0])
        sent = [interval("entrance", i) for i in range(3)] + [interval("shop", i) for i in range(2)]
        events = [event("entrance", 1), event("shop", 2)]
        for payload in sent:
            publisher.send(f"maskwatch/{payload['camera']}/intervals", payload)
        publisher.send("maskwatch/entrance/intervals", sent[0])  # a duplicate (QoS 1 is at least once)
        publisher.send("maskwatch/entrance/intervals", "{not json")
        publisher.send("maskwatch/entrance/intervals", {"camera": "entrance", "start_ts": T0})  # no id
        publisher.send("maskwatch/shop/intervals", interval("entrance", 9))  # camera is not the topic's
        publisher.send("maskwatch/events", {**events[0], "type": "exploded", "id": "f" * 32})
        for payload in events:
            publisher.send("maskwatch/events", payload)
        publisher.send("maskwatch/events", events[1])  # a duplicate
        stored_intervals, stored_events = wait_rows(db, probes + len(sent), len(events))
        time.sleep(1.0)  # anything else (a second copy) would have arrived by now
    finally:
        publisher.close()
        code, err = stop(proc)
    stored_intervals, stored_events = rows(db)
    real = [r for r in stored_intervals if r["camera"] != "probe"]
    assert sorted(r["id"] for r in real) == sorted(p["id"] for p in sent)
    assert {r["id"]: r for r in real}[sent[0]["id"]] == sent[0]
    assert sorted(r["id"] for r in stored_events) == sorted(p["id"] for p in events)
    assert code == 0, err
    assert "Traceback" not in err
    assert err.count("skipped a malformed message") == 4, err
    with History(db) as h:
        assert h.pending() == []  # stored as published: an aggregate database is no outbox


def test_rows_sent_while_the_aggregate_is_down_arrive_when_it_is_back(tmp_path, mosquitto):
    config = site_toml(tmp_path, mosquitto)
    db = tmp_path / "aggregate.db"
    publisher = Publisher(mosquitto)
    try:
        proc = start_cli("aggregate", "--config", config)
        wait_subscribed(publisher, db)
        code, err = stop(proc)
        assert code == 0, err
        before = len(rows(db)[0])
        missed = [interval("corridor", i) for i in range(4)]
        for payload in missed:  # the broker keeps them for the persistent session
            publisher.send("maskwatch/corridor/intervals", payload)
        proc = start_cli("aggregate", "--config", config)
        try:
            stored, _ = wait_rows(db, before + len(missed), 0)
        finally:
            code, err = stop(proc)
        assert code == 0, err
        assert {p["id"] for p in missed} <= {r["id"] for r in stored}
    finally:
        publisher.close()


def test_rows_the_database_refuses_are_skipped_and_acked_not_retried_forever(tmp_path, mosquitto):
    """A null, a table where text belongs, a list for the model, JSON's 1e400 (infinity): each was
    "cannot write database", retried, and stopped the aggregate unacked, so the broker sent it
    first again at every start. Now each is skipped (acked) and the good rows after it arrive."""
    config = site_toml(tmp_path, mosquitto)
    db = tmp_path / "aggregate.db"
    publisher = Publisher(mosquitto)
    try:
        proc = start_cli("aggregate", "--config", config)
        wait_subscribed(publisher, db)
        good = interval("entrance", 0)
        bad_intervals = [{**interval("entrance", 1), "start": None, "start_ts": None},
                         {**interval("entrance", 2), "model": [1]},
                         {**interval("entrance", 3), "source_state": {"a": 1}}]
        for payload in bad_intervals:
            publisher.send("maskwatch/entrance/intervals", payload)
        publisher.send("maskwatch/entrance/intervals",
                       json.dumps(interval("entrance", 4)).replace('"end_ts": ', '"end_ts": 1e400, "x": '))
        publisher.send("maskwatch/events", {**event("entrance", 1), "label": {"a": 1}})
        publisher.send("maskwatch/events", json.dumps(event("entrance", 2)).replace('"ts": ', '"ts": 1e400, "x": '))
        publisher.send("maskwatch/entrance/intervals", good)
        publisher.send("maskwatch/events", event("entrance", 3))
        stored_intervals, stored_events = wait_rows(db, 1, 1, timeout=20)
        assert good["id"] in {r["id"] for r in stored_intervals} and proc.poll() is None
        code, err = stop(proc)
        assert code == 0, err
        assert err.count("skipped a malformed message") == 6, err
        assert "cannot write database" not in err and "trying again" not in err, err
        # nothing was left unacked: a new start gets no bad message first and stores the next row
        proc = start_cli("aggregate", "--config", config)
        later = interval("entrance", 5)
        publisher.send("maskwatch/entrance/intervals", later)
        try:
            deadline = time.monotonic() + 30
            while later["id"] not in {r["id"] for r in rows(db)[0]} and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.2)
        finally:
            code, err = stop(proc)
        assert code == 0 and "skipped" not in err, err
        assert later["id"] in {r["id"] for r in rows(db)[0]}
    finally:
        publisher.close()


def test_db_option_overrides_the_config(tmp_path, mosquitto):
    config = site_toml(tmp_path, mosquitto)
    other = tmp_path / "elsewhere.db"
    proc = start_cli("aggregate", "--config", config, "--db", f"sqlite:///{other}")
    publisher = Publisher(mosquitto)
    try:
        wait_subscribed(publisher, other)
    finally:
        publisher.close()
        code, err = stop(proc)
    assert code == 0, err
    assert not (tmp_path / "aggregate.db").exists()


def test_broker_down_at_start_waits_and_logs_one_line(tmp_path):
    from services import Mosquitto

    broker = Mosquitto(tmp_path / "broker")  # not started
    config = site_toml(tmp_path, broker)
    db = tmp_path / "aggregate.db"
    proc = start_cli("aggregate", "--config", config)
    try:
        time.sleep(3)
        assert proc.poll() is None
        broker.start()
        publisher = Publisher(broker)
        try:
            wait_subscribed(publisher, db)
        finally:
            publisher.close()
    finally:
        code, err = stop(proc)
        broker.stop()
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "not reachable" in lines[0] and "connected to MQTT broker" in lines[1], err


@pytest.mark.parametrize("toml, message", [
    ('[db]\nurl = "x.db"\n', "no [mqtt] table"),
    ('[mqtt]\nhost = "b"\nqos = 1\n', "unknown key 'qos'"),
    ('[mqtt]\nhost = "b"\n[db]\nurl = 3\n', "[db]: url must be"),
    ('[mqtt\n', "is not valid TOML"),
])
def test_config_errors_are_one_line(tmp_path, toml, message):
    config = tmp_path / "site.toml"
    config.write_text(toml)
    result = run_cli("aggregate", "--config", config, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("maskwatch: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_config_file(tmp_path):
    result = run_cli("aggregate", "--config", tmp_path / "nope.toml", timeout=60)
    assert result.returncode == 2 and "config file not found" in result.stderr
