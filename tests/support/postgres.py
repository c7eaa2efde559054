"""A real, throwaway PostgreSQL server for the history tests (Debian's ``postgresql`` package).

:class:`PostgresServer` runs ``initdb`` into a fresh folder, ``pg_ctl start`` on a free port of
127.0.0.1 (its unix socket in that folder too, so nothing touches ``/var/run/postgresql``) and
stops it afterwards (``pg_ctl stop -m immediate``). The superuser ``maskwatch`` has a password and
TCP connections must give it (scram-sha-256): the tests can check a password never reaches a
message. Binaries: ``pg_config --bindir``, else the newest ``/usr/lib/postgresql/*/bin``.

``initdb`` refuses to run as root; as root the server runs as ``nobody`` (``runuser``), in a
folder under the system temp dir owned by ``nobody`` (pytest's own temp dirs are private to root).
Where no way works (no binaries, no ``runuser``), the tests skip with the reason.

Fixtures: ``postgres_server`` (one per test session) and ``postgres_url`` (a new empty database on
it for each test, as an SQLAlchemy ``postgresql+psycopg://`` URL with the password in it).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = "maskwatch"
PASSWORD = "pg-s3cret-Xq9"
"""The superuser's password: tests check it appears in no message."""


def find_bindir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``, or ``None``."""
    candidates = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")])
    candidates += reversed(versions)
    for c in candidates:
        if c and os.access(os.path.join(c, "initdb"), os.X_OK) and os.access(os.path.join(c, "pg_ctl"), os.X_OK):
            return Path(c)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in its own folder; :meth:`url` names a database on it."""

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin); "
                        "run scripts/install_test_deps.sh")
        self.bindir = bindir
        self.prefix: list[str] = []
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # initdb refuses root: run the server as nobody
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            if not os.access(runuser, os.X_OK):
                pytest.skip("running as root and runuser is missing: cannot run initdb as an unprivileged user")
            try:
                self.run_as = pwd.getpwnam("nobody")
            except KeyError:
                pytest.skip("running as root and there is no user 'nobody' to run initdb as")
            self.prefix = [runuser, "-u", "nobody", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="maskwatch-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._names = itertools.count(1)
        if self.run_as is not None:
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C"}
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=self.root)

    def start(self) -> PostgresServer:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as is not None:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        done = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            self.cleanup()
            pytest.skip(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        done = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                         "-w", "-t", "60", "start")
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-500:] if self.log.exists() else done.stderr
            self.cleanup()
            pytest.skip(f"pg_ctl start failed: {tail.strip()}")
        self.started = True
        return self

    def url(self, database: str = "postgres", password: str | None = PASSWORD) -> str:
        auth = USER if password is None else f"{USER}:{password}"
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        import sqlalchemy as sa

        name = f"history_{next(self._names)}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            self.started = False
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server for the session (skips, saying why, where none can run)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'maskwatch[postgres]')")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new empty database on the session's server (a URL with the password in it)."""
    return postgres_server.new_database()
