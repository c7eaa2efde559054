"""Real services for the site tests: a Mosquitto broker on 127.0.0.1 at a free port.

Debian's ``mosquitto`` (installed by ``scripts/install_test_deps.sh``) runs as a subprocess with a
config of our own: one listener on 127.0.0.1, anonymous clients allowed unless ``users`` are given,
no persistence (a restart is a broker that lost everything, the hard case for the publisher).
:class:`Mosquitto` can be stopped, killed (SIGKILL: no clean goodbye to the clients) and started
again on the same port. Tests take it from the ``mosquitto`` fixture (tests/conftest.py), or
build one with ``Mosquitto(tmp_path)`` when they need users; without mosquitto they skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The broker binary, or ``None`` (``/usr/sbin`` is often not on a user's PATH)."""
    for candidate in MOSQUITTO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mosquitto")


def require_mosquitto() -> str:
    """The broker binary, or skip the test with the reason."""
    path = find_mosquitto()
    if path is None:
        pytest.skip("mosquitto is not installed (run scripts/install_test_deps.sh)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """One broker process; ``port`` stays the same across :meth:`restart`.

    ``users``: ``{name: password}`` -> a password file (``mosquitto_passwd``) and no anonymous access.
    ``acl``: lines of a Mosquitto ACL file (``topic readwrite #``, ``topic deny a/+/b``); without it
    every client may read and write every topic.
    """

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None,
                 acl: list[str] | None = None) -> None:
        self.binary = require_mosquitto()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if os.geteuid() == 0:  # as root it would become user 'mosquitto', who cannot read pytest's 0700 folders
            lines.append("user root")
        if users:
            passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            if not os.access(passwd, os.X_OK):
                pytest.skip("mosquitto_passwd is not installed (run scripts/install_test_deps.sh)")
            password_file = self.workdir / "passwd"
            password_file.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run([passwd, "-b", str(password_file), name, password], check=True,
                               capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text("\n".join(acl) + "\n")
            lines.append(f"acl_file {acl_file}")
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        """Start the broker and wait until its port accepts connections."""
        if self.running:
            return self
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:  # the old one still closing
            time.sleep(0.05)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} in {timeout} s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then wait (SIGKILL if it does not end)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the clients see the connection drop, no clean goodbye."""
        self._end(signal.SIGKILL, 10.0)

    def pause(self) -> None:
        """SIGSTOP: the connections stay open, the kernel still takes bytes, nothing is answered."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, kill: bool = True) -> "Mosquitto":
        (self.kill if kill else self.stop)()
        return self.start()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _end(self, sig: int, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def mosquitto(tmp_path_factory) -> Mosquitto:
    """A running broker for one test (its own port and folder), stopped afterwards."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class MqttRecorder:
    """A paho subscriber that records ``(topic, payload text, retain)`` of every message on ``topics``.

    It subscribes on every connect (so it follows a restarted broker); :meth:`connect` returns once
    the broker acknowledged the subscription.
    """

    def __init__(self, broker: Mosquitto, topics: str | list[str] = "#", username: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.broker = broker
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.messages: list[tuple[str, str, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self._lock = threading.Lock()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode("utf-8", "replace"), bool(message.retain)))

    def connect(self, timeout: float = 10.0) -> "MqttRecorder":
        self._subscribed.clear()
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("the recorder's subscription was not acknowledged")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[tuple[str, str, bool]]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[str]:
        """Payloads received on ``topic``, in order."""
        return [payload for t, payload, _retain in self.snapshot() if t == topic]

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "messages") -> None:
        """Until ``predicate(recorder)`` is true; AssertionError naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {len(self.snapshot())} messages")


def retained(broker: Mosquitto, topics: str = "#", settle: float = 1.0, **auth) -> dict[str, str]:
    """What a new subscriber gets at once: the retained value of every topic under ``topics``."""
    recorder = MqttRecorder(broker, topics, **auth).connect()
    time.sleep(settle)
    recorder.close()
    return {topic: payload for topic, payload, is_retained in recorder.snapshot() if is_retained}
