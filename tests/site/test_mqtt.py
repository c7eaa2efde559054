"""MqttPublisher against a real Mosquitto broker: topics, retained values, discovery, outages, secrets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, cli_env
from services import Mosquitto, MqttRecorder, retained
from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.frames import SourceState
from maskwatch.results import Event, IntervalSummary
from maskwatch.site.history import History
from maskwatch.site.publisher import MqttPublisher, MqttSettings

T0 = 1_760_000_000.0


def summary(i: int, with_mask: int = 1, without_mask: int = 1) -> IntervalSummary:
    return IntervalSummary(start=T0 + 60 * i, end=T0 + 60 * (i + 1), frames=300, faces=40, people_seen=2,
                           by_label={"with_mask": with_mask, "without_mask": without_mask, "mask_worn_incorrectly": 0},
                           fps=5.0, dropped_frames=0, source_state=SourceState.LIVE, model="mask_classifier 0.4.0")


def settings(broker: Mosquitto, **table) -> MqttSettings:
    return MqttSettings.from_table({"host": broker.host, "port": broker.port, **table}, "[mqtt]")


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_between_retries(broker: Mosquitto, publisher: MqttPublisher) -> MqttRecorder:
    """Start ``broker`` just after one of the publisher's reconnect tries failed, and subscribe at once.

    paho's next try is then at least 1 s away (the backoff doubles from 1 s), so the recorder is
    subscribed before the publisher can send anything: a new broker keeps no message for it.
    """
    failures = publisher.connect_failures
    wait_until(lambda: publisher.connect_failures > failures, what="a failed reconnect try")
    broker.start()
    return MqttRecorder(broker, "maskwatch/#").connect()


def interval_ids(recorder: MqttRecorder, camera: str) -> set[str]:
    return {json.loads(p)["id"] for p in recorder.on(f"maskwatch/{camera}/intervals")}


@pytest.fixture
def history(tmp_path):
    h = History(tmp_path / "history.db")
    yield h
    h.close()


# -- [mqtt] ---------------------------------------------------------------------------------------------


def test_settings_defaults_and_secret_sources(tmp_path, monkeypatch):
    s = MqttSettings.from_table({"host": "broker"}, "[mqtt]")
    assert (s.port, s.prefix, s.client_id, s.username, s.password, s.keepalive, s.tls, s.ca_certs, s.discovery,
            s.discovery_prefix) == (1883, "maskwatch", None, None, None, 30, False, None, True, "homeassistant")
    monkeypatch.setenv("MW_TEST_MQTT_PW", "env-secret")
    assert MqttSettings.from_table({"host": "b", "username": "u", "password_env": "MW_TEST_MQTT_PW"}).password == "env-secret"
    (tmp_path / "pw").write_text("file-secret\n")
    s = MqttSettings.from_table({"host": "b", "username": "u", "password_file": str(tmp_path / "pw"), "port": 8883,
                                 "tls": True, "prefix": "site/a", "client_id": "mw1", "discovery": False})
    assert (s.password, s.port, s.tls, s.prefix, s.client_id, s.discovery) == ("file-secret", 8883, True, "site/a",
                                                                             "mw1", False)
    assert "file-secret" not in repr(s)


@pytest.mark.parametrize("table, message", [
    ({}, "host is missing"),
    ({"host": "b", "hots": 1}, "unknown key 'hots'"),
    ({"host": "b", "port": 0}, "port must be a whole number from 1 to 65535"),
    ({"host": "b", "port": "1883"}, "port must be a whole number"),
    ({"host": "b", "prefix": "a b"}, "prefix 'a b' must be topic levels"),
    ({"host": "b", "prefix": "maskwatch/"}, "prefix 'maskwatch/' must be topic levels"),
    ({"host": "b", "discovery_prefix": "+"}, "discovery_prefix '+' must be topic levels"),
    ({"host": "b", "tls": "yes"}, "tls must be true or false"),
    ({"host": "b", "password": "x"}, "a password needs a username"),
    ({"host": "b", "username": "u", "password": "x", "password_env": "Y"}, "give only one of password"),
    ({"host": "b", "ca_certs": "/nonexistent.pem", "tls": True}, "ca_certs /nonexistent.pem is not a file"),
    ({"host": "b", "keepalive": 1}, "keepalive must be a whole number from 5"),
])
def test_settings_errors_are_one_line(table, message):
    with pytest.raises(MaskwatchError, match="^\\[mqtt\\]: .*") as e:
        MqttSettings.from_table(table, "[mqtt]")
    assert message in str(e.value) and "\n" not in str(e.value)


# -- topics -------------------------------------------------------------------------------------------


def test_topics_retained_values_and_discovery(mosquitto, history):
    live = MqttRecorder(mosquitto, "maskwatch/#").connect()
    publisher = MqttPublisher(settings(mosquitto), history, ["entrance", "shop"]).start()
    try:
        publisher.set_state("entrance", SourceState.LIVE)
        publisher.set_state("shop", "reconnecting")
        publisher.set_in_view("entrance", {"with_mask": 2, "without_mask": 1})
        row = history.add_interval("entrance", summary(0, with_mask=3, without_mask=1))
        event = history.add_event("entrance", Event("label_decided", 7, T0 + 5, 25, "with_mask", 0.9, (1, 2, 3, 4)))
        publisher.wake()
        live.wait_for(lambda r: r.on("maskwatch/events") and r.on("maskwatch/entrance/intervals"), what="the rows")
        wait_until(lambda: not history.pending(), what="rows marked published")
        assert json.loads(live.on("maskwatch/entrance/intervals")[0]) == row
        assert json.loads(live.on("maskwatch/events")[0]) == event
        assert json.loads(live.on("maskwatch/events")[0])["type"] == "update"

        kept = retained(mosquitto)
        assert kept["maskwatch/available"] == "online"
        assert kept["maskwatch/entrance/state"] == "live"
        assert kept["maskwatch/shop/state"] == "reconnecting"
        assert kept["maskwatch/entrance/with_mask"] == "2"
        assert kept["maskwatch/entrance/without_mask"] == "1"
        assert kept["maskwatch/entrance/mask_worn_incorrectly"] == "0"
        assert kept["maskwatch/entrance/compliance"] == "0.75"
        assert "maskwatch/entrance/intervals" not in kept and "maskwatch/events" not in kept  # rows: not retained

        # a label that left the view reads 0, not its last count
        publisher.set_in_view("entrance", {"with_mask": 1})
        live.wait_for(lambda r: r.on("maskwatch/entrance/without_mask")[-1:] == ["0"], what="without_mask 0")

        configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
        assert set(configs) == {f"homeassistant/sensor/maskwatch_{camera}_{what}/config"
                                for camera in ("entrance", "shop") for what in ("compliance", "state", "masked_time", *LABELS)}
        compliance = configs["homeassistant/sensor/maskwatch_entrance_compliance/config"]
        assert compliance["state_topic"] == "maskwatch/entrance/compliance"
        assert compliance["unique_id"] == "maskwatch_entrance_compliance"
        assert compliance["availability_topic"] == "maskwatch/available"
        assert compliance["device"]["identifiers"] == ["maskwatch_entrance"]
        assert compliance["device"]["name"] == "entrance"
        assert compliance["unit_of_measurement"] == "%"
        count = configs["homeassistant/sensor/maskwatch_shop_without_mask/config"]
        assert count["state_topic"] == "maskwatch/shop/without_mask" and count["device"]["name"] == "shop"
        masked = configs["homeassistant/sensor/maskwatch_shop_masked_time/config"]
        assert masked["state_topic"] == "maskwatch/shop/intervals" and "masked_time_share" in masked["value_template"]
    finally:
        publisher.close()
        live.close()
    assert retained(mosquitto, "maskwatch/available") == {"maskwatch/available": "offline"}


def test_discovery_off_and_other_prefixes(mosquitto, history):
    publisher = MqttPublisher(settings(mosquitto, prefix="site/a", discovery=False), history, ["door"]).start()
    try:
        publisher.set_state("door", "connecting")
        wait_until(lambda: retained(mosquitto, settle=0.3).get("site/a/door/state") == "connecting", what="state")
        kept = retained(mosquitto)
        assert kept["site/a/available"] == "online"
        assert not any(t.startswith("homeassistant/") for t in kept)
    finally:
        publisher.close()
    s = settings(mosquitto, prefix="site/a", discovery_prefix="ha")
    configs = MqttPublisher(s, None, ["door"]).discovery_configs()
    config = configs["ha/sensor/site_a_door_compliance/config"]
    assert config["state_topic"] == "site/a/door/compliance" and config["availability_topic"] == "site/a/available"


def test_compliance_none_when_nobody_was_decided(mosquitto, history):
    history.add_interval("door", summary(0, with_mask=0, without_mask=0))
    with MqttPublisher(settings(mosquitto), history, ["door"]):
        wait_until(lambda: not history.pending(), what="the row published")
        assert retained(mosquitto)["maskwatch/door/compliance"] == "None"


def test_bad_camera_names_and_states_are_refused(mosquitto):
    with pytest.raises(MaskwatchError, match="camera name 'a/b' cannot be an MQTT topic level"):
        MqttPublisher(settings(mosquitto), None, ["a/b"])
    publisher = MqttPublisher(settings(mosquitto), None, ["door"])
    with pytest.raises(ValueError, match="unknown camera state 'sleeping'"):
        publisher.set_state("door", "sleeping")


def test_last_will_says_offline_when_the_process_dies(mosquitto):
    code = ("import sys, time\n"
            "from maskwatch.site.publisher import MqttSettings, MqttPublisher\n"
            f"s = MqttSettings.from_table({{'host': '127.0.0.1', 'port': {mosquitto.port}}})\n"
            "p = MqttPublisher(s, None, ['door']).start()\n"
            "while not p.connected: time.sleep(0.05)\n"
            "print('connected', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "connected"
        wait_until(lambda: retained(mosquitto, settle=0.3).get("maskwatch/available") == "online", what="online")
        proc.kill()
        proc.wait(timeout=10)
        # the broker sends the will once it sees the connection drop (at once for a closed socket)
        wait_until(lambda: retained(mosquitto, settle=0.3).get("maskwatch/available") == "offline", what="the will")
    finally:
        proc.kill()
        proc.wait(timeout=10)


# -- outages ------------------------------------------------------------------------------------------


def test_broker_killed_mid_run_every_row_arrives_after_the_restart(mosquitto, history, caplog):
    caplog.set_level(logging.INFO, logger="maskwatch.site.mqtt")
    live = MqttRecorder(mosquitto, "maskwatch/#").connect()
    publisher = MqttPublisher(settings(mosquitto), history, ["entrance"]).start()
    try:
        publisher.set_state("entrance", "live")
        publisher.set_in_view("entrance", {"without_mask": 3})
        for i in range(10):
            history.add_interval("entrance", summary(i))
            publisher.wake()
        live.wait_for(lambda r: len(interval_ids(r, "entrance")) == 10, what="the first 10 rows")
        first = interval_ids(live, "entrance")
        wait_until(lambda: not history.pending(), what="the first 10 rows acked")

        mosquitto.kill()  # mid-run, no goodbye: whatever was in flight is the publisher's problem
        wait_until(lambda: not publisher.connected, what="the publisher to see the broker gone")
        during = [history.add_interval("entrance", summary(i))["id"] for i in range(10, 40)]
        publisher.wake()
        time.sleep(0.5)
        assert {p["id"] for _k, p in history.pending()} == set(during)  # waiting in the outbox
        live.close()
        live = start_between_retries(mosquitto, publisher)
        for i in range(40, 45):  # more rows while it reconnects
            history.add_interval("entrance", summary(i))
            publisher.wake()
        wait_until(lambda: not history.pending(), timeout=60, what="the outbox to empty after the restart")
        every = {p["id"] for p in history.intervals(camera="entrance")}
        assert len(every) == 45
        live.wait_for(lambda r: interval_ids(r, "entrance") >= every - first, what="every row of the database")
        assert publisher.published_rows >= 45
        kept = retained(mosquitto)  # the restarted broker kept nothing (no persistence): all sent again
        assert kept["maskwatch/entrance/compliance"] == "0.5"
        assert kept["maskwatch/entrance/state"] == "live" and kept["maskwatch/entrance/without_mask"] == "3"
        assert kept["maskwatch/available"] == "online"
        assert "homeassistant/sensor/maskwatch_entrance_compliance/config" in kept
        assert len(live.on("maskwatch/entrance/compliance")) < 10  # not once per row of the backlog
    finally:
        publisher.close()
        live.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("connected to MQTT broker" in m for m in messages) == 2, messages
    assert sum("connection lost" in m for m in messages) == 1, messages


def test_broker_down_at_start_is_not_fatal(tmp_path, history, caplog):
    caplog.set_level(logging.INFO, logger="maskwatch.site.mqtt")
    broker = Mosquitto(tmp_path / "broker")  # not started
    ids = [history.add_interval("door", summary(i))["id"] for i in range(5)]
    ids.append(history.add_event("door", Event("person_seen", 1, T0, 0))["id"])
    publisher = MqttPublisher(settings(broker), history, ["door"]).start()
    try:
        wait_until(lambda: publisher.connect_failures >= 2, what="two failed tries")
        assert not publisher.connected and len(history.pending()) == 6
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "not reachable" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
        live = start_between_retries(broker, publisher)
        try:
            wait_until(lambda: not history.pending(), timeout=60, what="the rows after the broker came")
            live.wait_for(lambda r: interval_ids(r, "door") == set(ids[:5]) and r.on("maskwatch/events"),
                          what="the rows")
            assert json.loads(live.on("maskwatch/events")[0])["id"] == ids[5]
        finally:
            live.close()
    finally:
        publisher.close()
        broker.stop()
    assert any("connected to MQTT broker" in r.getMessage() for r in caplog.records)


def test_unknown_host_is_logged_once(history, caplog):
    caplog.set_level(logging.INFO, logger="maskwatch.site.mqtt")
    s = MqttSettings.from_table({"host": "no-such-host.invalid", "port": 1883})
    with MqttPublisher(s, history, ["door"]) as publisher:
        wait_until(lambda: publisher.connect_failures >= 2, what="two failed tries")  # retried, not just tried
    assert publisher.connect_failures >= 2
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 1 and "cannot resolve host name 'no-such-host.invalid'" in messages[0], messages


# -- credentials ----------------------------------------------------------------------------------------


def test_password_never_in_a_topic_payload_or_log(tmp_path, history, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Pw-4711"
    broker = Mosquitto(tmp_path / "broker", users={"maskwatch": secret}).start()
    try:
        monkeypatch.setenv("MW_TEST_BROKER_PW", "wrong-Pw-0815")
        bad = MqttSettings.from_table({"host": broker.host, "port": broker.port, "username": "maskwatch",
                                       "password_env": "MW_TEST_BROKER_PW"})
        with MqttPublisher(bad, history, ["door"]) as publisher:
            wait_until(lambda: publisher.connect_failures >= 2, what="refused twice")
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1 and "maskwatch" not in refused[0].split(":")[0], refused

        monkeypatch.setenv("MW_TEST_BROKER_PW", secret)
        good = MqttSettings.from_table({"host": broker.host, "port": broker.port, "username": "maskwatch",
                                        "password_env": "MW_TEST_BROKER_PW"})
        live = MqttRecorder(broker, "#", username="maskwatch", password=secret).connect()
        history.add_interval("door", summary(0))
        with MqttPublisher(good, history, ["door"]) as publisher:
            publisher.set_state("door", "live")
            wait_until(lambda: not history.pending(), what="the row published with the right password")
            live.wait_for(lambda r: r.on("maskwatch/door/state"), what="the state")
        live.close()
        everything = json.dumps(live.snapshot()) + "\n".join(r.getMessage() for r in caplog.records) + caplog.text
        for word in (secret, "wrong-Pw-0815"):
            assert word not in everything
        assert live.on("maskwatch/available")[-1] == "offline"
    finally:
        broker.stop()


class FlakyHistory(History):
    """The real history database, whose reads fail while ``broken`` (a locked file, a server restarting)."""

    broken = False

    def pending(self, limit: int = 500):
        if self.broken:
            raise MaskwatchError(f"cannot read database {self.shown_url}: database is locked")
        return super().pending(limit)


def test_a_failing_database_is_logged_once_and_rows_go_out_when_it_works(mosquitto, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="maskwatch.site.mqtt")
    history = FlakyHistory(tmp_path / "history.db")
    history.broken = True
    ids = {history.add_interval("door", summary(i))["id"] for i in range(3)}
    live = MqttRecorder(mosquitto, "maskwatch/#").connect()
    publisher = MqttPublisher(settings(mosquitto), history, ["door"]).start()
    try:
        time.sleep(5)  # two polls or more, each failing
        assert live.on("maskwatch/door/intervals") == []
        history.broken = False
        live.wait_for(lambda r: interval_ids(r, "door") == ids, what="the rows once the database works")
    finally:
        publisher.close()
        live.close()
        history.close()
    outbox = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox:")]
    assert len(outbox) == 2, outbox
    assert "database is locked; trying again" in outbox[0] and "works again" in outbox[1]


def test_a_backlog_goes_out_in_order_with_a_bounded_number_in_flight(mosquitto, history):
    from maskwatch.site.publisher import MAX_IN_FLIGHT

    ids = [history.add_interval("door", summary(i))["id"] for i in range(150)]
    live = MqttRecorder(mosquitto, "maskwatch/door/intervals").connect()
    publisher = MqttPublisher(settings(mosquitto), history, ["door"]).start()
    most = 0
    try:
        deadline = time.monotonic() + 60
        while history.pending() and time.monotonic() < deadline:
            most = max(most, len(publisher._in_flight))
            time.sleep(0.005)
        live.wait_for(lambda r: len(r.on("maskwatch/door/intervals")) >= 150, what="the backlog")
    finally:
        publisher.close()
        live.close()
    assert 0 < most <= MAX_IN_FLIGHT
    assert [json.loads(p)["id"] for p in live.on("maskwatch/door/intervals")] == ids  # oldest first, once each


# -- races and refusals (review findings) -----------------------------------------------------------------


def test_a_state_set_while_connecting_is_not_overwritten_by_an_older_copy(mosquitto, history):
    """set_state lands in _on_connect's window (after 'connected', before the retained values go out).

    The hook runs where the connection is logged, inside that window, and sets a newer state from
    another thread; the broker must end up with the newer one, not the value remembered before.
    """
    publisher = MqttPublisher(settings(mosquitto), history, ["door"])
    publisher.set_state("door", "live")  # remembered; published on connect
    original, fired = publisher._conn_log.connected, []

    def connected_then_race() -> None:
        original()
        if not fired:
            fired.append(True)
            racer = threading.Thread(target=publisher.set_state, args=("door", "ended"))
            racer.start()
            racer.join(timeout=1.0)  # a fix that blocks here must not deadlock; it just waits

    publisher._conn_log.connected = connected_then_race
    publisher.start()
    try:
        wait_until(lambda: fired and publisher.connected, what="the connect with the race")
        time.sleep(0.5)
        assert retained(mosquitto, "maskwatch/door/state") == {"maskwatch/door/state": "ended"}
    finally:
        publisher.close()


def test_rows_the_broker_refuses_stay_pending_and_are_logged_once(tmp_path, history, caplog, monkeypatch):
    import maskwatch.site.mqtt.outbox as outbox_module

    caplog.set_level(logging.INFO, logger="maskwatch.site.mqtt")
    monkeypatch.setattr(outbox_module, "REFUSED_RETRY_S", 0.3)  # retried often within the test
    acl = ["topic readwrite #", "topic deny maskwatch/+/intervals"]
    broker = Mosquitto(tmp_path / "broker", acl=acl).start()
    refused_ids = {history.add_interval("door", summary(i))["id"] for i in range(3)}
    event_id = history.add_event("door", Event("person_seen", 1, T0, 0))["id"]
    try:
        with MqttPublisher(settings(broker), history, ["door"]) as publisher:
            wait_until(lambda: event_id not in {p["id"] for _k, p in history.pending()}, what="the event published")
            wait_until(lambda: publisher.refused_rows >= 9, timeout=30, what="the refused rows offered 3 times")
            assert {p["id"] for _k, p in history.pending()} == refused_ids  # not marked published
        refusals = [r.getMessage() for r in caplog.records if "refused a row" in r.getMessage()]
        assert len(refusals) == 1 and "maskwatch/door/intervals" in refusals[0], refusals
        assert "Not authorized" in refusals[0]

        # the broker's ACL fixed: the waiting rows go out
        broker.stop()
        broker = Mosquitto(tmp_path / "broker", port=broker.port).start()
        live = MqttRecorder(broker, "maskwatch/#").connect()
        try:
            with MqttPublisher(settings(broker), history, ["door"]):
                wait_until(lambda: not history.pending(), timeout=30, what="the rows once allowed")
                live.wait_for(lambda r: interval_ids(r, "door") == refused_ids, what="the rows on the topic")
        finally:
            live.close()
    finally:
        broker.stop()


def test_rows_sent_to_a_frozen_broker_stay_pending_and_arrive_after_it_is_killed(mosquitto, history):
    live = MqttRecorder(mosquitto, "maskwatch/#").connect()
    publisher = MqttPublisher(settings(mosquitto), history, ["entrance"]).start()
    try:
        wait_until(lambda: publisher.connected, what="connected")
        mosquitto.pause()  # SIGSTOP: the TCP connection stays up, nothing is acked
        frozen = {history.add_interval("entrance", summary(i))["id"] for i in range(8)}
        publisher.wake()
        wait_until(lambda: len(publisher._in_flight) == 8, what="the rows sent into the frozen broker")
        time.sleep(1.0)
        assert {p["id"] for _k, p in history.pending()} == frozen  # sent, never acked: still pending
        assert publisher.published_rows == 0
        live.close()
        mosquitto.kill()  # SIGKILL works on a stopped process: the in-flight rows die with it
        wait_until(lambda: not publisher.connected, what="the publisher to see the broker gone")
        live = start_between_retries(mosquitto, publisher)
        wait_until(lambda: not history.pending(), timeout=60, what="the in-flight rows after the restart")
        live.wait_for(lambda r: interval_ids(r, "entrance") == frozen, what="every in-flight row")
    finally:
        publisher.close()
        live.close()
