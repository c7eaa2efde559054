"""``maskwatch doctor``: what a bug report needs, and whether this install can run.

::

    maskwatch doctor                       # versions, models (path, size, sha256), OpenCV, Qt
    maskwatch doctor --config site.toml    # ... and the site's MQTT broker and history database

Prints one ``name: value`` line per fact, grouped under headings, then ``doctor: ok`` (exit 0) or
``doctor: N problem(s): ...`` (exit 1). Each problem line starts with ``PROBLEM:`` and says what to
do. Credentials never appear: database URLs are shown with the password hidden, camera sources
redacted, and the MQTT login only as "set". A site file that cannot be read is the usual one-line
``maskwatch: error: ...`` (exit 2).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from maskwatch import __version__
from maskwatch.errors import MaskwatchError
from maskwatch.paths import PACKAGE_DIR, assets_dir, demo_clip, models_dir
from maskwatch.site.config import SiteConfig

DISTRIBUTIONS = (
    "numpy", "opencv-contrib-python", "mediapipe", "ai-edge-litert", "onnxruntime", "PyQt6", "PyQt6-Qt6",
    "pyqtgraph", "scipy", "rich", "SQLAlchemy", "paho-mqtt", "psycopg", "tensorflow", "tensorflow-cpu", "keras",
)
"""Distributions whose versions a bug report needs (absent ones are printed as such)."""

MODEL_FILES = (
    "mask_classifier.tflite", "mask_classifier.json", "face_detection_retinaface_mnet025.onnx",
    "face_detection_short_range.tflite", "face_detection_full_range_sparse.tflite",
)
"""What the app loads from ``models/`` (the classifier and every detector mode)."""

MODEL_SUFFIXES = (".tflite", ".onnx", ".json", ".keras", ".npz")

NETWORK_TIMEOUT_S = 5.0


class Report:
    """Lines printed as they come (a slow check shows what was found before it) + the problems."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.problems: list[str] = []

        self._headings = 0

    def heading(self, text: str) -> None:
        print(("\n" if self._headings else "") + text, file=self.out, flush=True)
        self._headings += 1

    def line(self, name: str, value: object) -> None:
        print(f"  {name}: {value}", file=self.out, flush=True)

    def problem(self, text: str) -> None:
        print(f"  PROBLEM: {text}", file=self.out, flush=True)
        self.problems.append(text)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def distributions_providing(module: str) -> list[str]:
    """Installed distributions that ship the top-level ``module`` package (``cv2``, ``tensorflow``):
    two of them write over each other's files."""
    found = set()
    for dist in metadata.distributions():
        try:
            top = (dist.read_text("top_level.txt") or "").split()
        except (OSError, UnicodeDecodeError):
            top = []
        files = dist.files or []
        if module in top or any(str(f) == f"{module}/__init__.py" for f in files):
            found.add(f"{dist.metadata['Name']} {dist.version}")
    return sorted(found)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def where_installed() -> str:
    """'installed package at ...' or 'source tree at ...' (a clone, ``pip install -e .``)."""
    if (PACKAGE_DIR / "models").is_dir():
        return f"installed package {PACKAGE_DIR}"
    return f"source tree {PACKAGE_DIR.parent} (editable install or clone)"


# -- sections -----------------------------------------------------------------------------------------


def check_versions(r: Report) -> None:
    r.heading(f"maskwatch {__version__}")
    r.line("python", f"{platform.python_version()} ({sys.executable})")
    r.line("platform", platform.platform())
    r.line("package", where_installed())
    for name in DISTRIBUTIONS:
        r.line(name, _version(name))
    tf = distributions_providing("tensorflow")
    if len(tf) > 1:
        r.problem(f"{len(tf)} distributions install the tensorflow package ({', '.join(tf)}): they overwrite each "
                  "other's files; keep one (pip uninstall one of them, then reinstall the other)")


def check_models(r: Report) -> None:
    folder = models_dir()
    env = os.environ.get("MASKWATCH_MODELS")
    r.heading(f"models: {folder}" + (" (from MASKWATCH_MODELS)" if env else ""))
    if not folder.is_dir():
        r.problem(f"models folder not found: {folder}" + (" (unset MASKWATCH_MODELS?)" if env else
                                                           " (reinstall maskwatch)"))
        return
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)
    for path in files:
        r.line(path.name, f"{path.stat().st_size} bytes  sha256 {sha256_of(path)}")
    for name in MODEL_FILES:
        if not (folder / name).is_file():
            r.problem(f"model file missing: {folder / name}")
    classifier = folder / "mask_classifier.tflite"
    if classifier.is_file():
        # lazy: a broken model runtime is reported, not fatal
        from maskwatch.classification import MaskClassifier
        try:
            model = MaskClassifier(classifier)
        except MaskwatchError as e:
            r.problem(str(e))
        else:
            r.line("mask classifier", f"loads: {model.info.name} {model.version}, {model.input_size}x"
                   f"{model.input_size} input, runtime {model.runtime}")


def check_assets(r: Report) -> None:
    r.heading(f"assets: {assets_dir()}")
    clip = demo_clip()
    if clip.is_file():
        r.line("demo clip", f"{clip.name}, {clip.stat().st_size} bytes")
    else:
        r.problem(f"demo clip not found: {clip} (maskwatch --headless without --source needs it)")
    for name in ("maskwatch.desktop", "maskwatch.service", "icons/maskwatch.svg"):
        path = assets_dir() / name
        r.line(name, "present" if path.is_file() else "missing")


def opencv_build_lines(info: str) -> list[str]:
    """The lines of ``cv2.getBuildInformation()`` that matter for reading cameras and files."""
    keep = ("FFMPEG:", "GStreamer:", "V4L/V4L2:", "Parallel framework:", "Baseline:", "GUI:")
    return [" ".join(line.split()) for line in info.splitlines() if line.strip().startswith(keep)]


def check_opencv(r: Report) -> None:
    r.heading("OpenCV")
    providers = distributions_providing("cv2")
    r.line("distributions", ", ".join(providers) or "none")
    if len(providers) > 1:
        r.problem(f"{len(providers)} OpenCV distributions are installed ({', '.join(providers)}): they overwrite each "
                  "other's cv2; keep only opencv-contrib-python (mediapipe's): pip uninstall the others, then "
                  "pip install --force-reinstall opencv-contrib-python")
    try:
        import cv2
    except ImportError as e:
        r.problem(f"cv2 does not import: {e}")
        return
    r.line("cv2", f"{cv2.__version__} ({Path(cv2.__file__).parent})")
    for line in opencv_build_lines(cv2.getBuildInformation()):
        name, _, value = line.partition(":")
        r.line(name, value.strip())


QT_PROBE = ("import sys\nfrom PyQt6.QtCore import QLibraryInfo\nfrom PyQt6.QtGui import QGuiApplication\n"
            "app = QGuiApplication(sys.argv[:1])\n"
            "print(app.platformName(), QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))\n")


def check_qt(r: Report) -> None:
    """The Qt platform plugin the app would get, probed in a child process (Qt aborts a process
    whose platform plugin cannot load, and that must not be this one)."""
    r.heading("Qt")
    try:
        from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, QLibraryInfo
    except ImportError as e:
        r.problem(f"PyQt6 does not import ({e}): the desktop app cannot start; --headless works")
        return
    r.line("PyQt6 / Qt", f"{PYQT_VERSION_STR} / {QT_VERSION_STR}")
    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    available = sorted(p.name.removeprefix("libq").split(".")[0] for p in plugins.glob("libq*.so*")) if plugins.is_dir() else []
    if available:
        r.line("platform plugins", ", ".join(available))
    r.line("QT_QPA_PLATFORM", os.environ.get("QT_QPA_PLATFORM", "(not set)"))
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not (display or os.environ.get("QT_QPA_PLATFORM")):
        r.line("platform plugin", "not tried: no DISPLAY or WAYLAND_DISPLAY (the window needs one; --headless does not)")
        return
    try:
        proc = subprocess.run([sys.executable, "-c", QT_PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        r.problem("the Qt platform plugin did not start within 30 s")
        return
    if proc.returncode == 0 and proc.stdout.split():
        r.line("platform plugin", f"{proc.stdout.split()[0]} (loads)")
        return
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    hint = next((line for line in lines if "plugin" in line.lower()), lines[-1] if lines else f"exit {proc.returncode}")
    r.problem(f"the Qt platform plugin does not load: {hint[:300]} (on Debian/Ubuntu: apt-get install libxcb-cursor0 "
              "libxkbcommon-x11-0; or use --headless)")


# -- a site's services ------------------------------------------------------------------------------


def check_site(r: Report, site) -> None:
    r.heading(f"site: {site.path}")
    for camera in site.cameras:
        r.line(f"camera {camera.name}", camera.shown_source)
    check_database(r, site.db_url, site.shown_db_url)
    if site.mqtt is None:
        r.line("mqtt", "no [mqtt] table (no MQTT)")
    else:
        check_mqtt(r, site.mqtt)


def check_database(r: Report, url: str, shown: str) -> None:
    """Connect and run ``SELECT 1``; a SQLite file is never created here (only its folder checked)."""
    import sqlalchemy as sa

    r.line("database", shown)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            r.line("database check", "in-memory / URI SQLite: nothing to reach")
            return
        file = Path(database).expanduser()
        if not file.exists():
            folder = file.parent
            if folder.is_dir() and os.access(folder, os.W_OK):
                r.line("database check", f"{file.name} does not exist yet; serve creates it in {folder} (writable)")
            else:
                r.problem(f"database folder {folder} is missing or not writable: serve cannot create {file.name}")
            return
    connect_args = {"connect_timeout": int(NETWORK_TIMEOUT_S)} if parsed.get_backend_name() == "postgresql" else {}
    started = time.monotonic()
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except ModuleNotFoundError as e:
        r.problem(f"database driver missing ({e.name}): pip install 'maskwatch[postgres]' for PostgreSQL")
        return
    except Exception as e:  # sqlalchemy.exc.*: refused, unknown host, bad login, not a database
        text = " ".join(str(getattr(e, "orig", None) or e).split())
        for secret in (parsed.password,):
            if secret:
                text = text.replace(str(secret), "***")
        r.problem(f"database {shown} not reachable: {type(e).__name__}: {text[:300]}")
        return
    r.line("database check", f"reachable (SELECT 1 in {1000 * (time.monotonic() - started):.0f} ms)")


def check_mqtt(r: Report, settings) -> None:
    """TCP connect, then an MQTT CONNECT with the site's login: 'reachable' means the broker accepted us."""
    # lazy: a broken paho-mqtt install is reported, not fatal
    from maskwatch.site.mqtt import make_client

    login = "username and password set" if settings.password else ("username set" if settings.username else "none")
    r.line("mqtt", f"{settings.address}{' (TLS)' if settings.tls else ''}, login: {login}")
    try:
        with socket.create_connection((settings.host, settings.port), timeout=NETWORK_TIMEOUT_S):
            pass
    except OSError as e:
        r.problem(f"MQTT broker {settings.address} not reachable: {e.strerror or type(e).__name__}")
        return
    result: dict[str, object] = {}
    client = make_client(settings, client_id=f"maskwatch-doctor-{os.getpid()}")
    client.on_connect = lambda c, u, flags, reason, props: result.setdefault("reason", reason)
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive)
        deadline = time.monotonic() + NETWORK_TIMEOUT_S
        while "reason" not in result and time.monotonic() < deadline:
            client.loop(timeout=0.2)
    except Exception as e:  # TLS handshake, refused connection
        r.problem(f"MQTT broker {settings.address}: cannot connect: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        return
    finally:
        try:
            client.disconnect()
        except Exception:  # noqa: S110 - best effort on a connection that may not exist
            pass
    reason = result.get("reason")
    if reason is None:
        r.problem(f"MQTT broker {settings.address} accepted TCP but did not answer CONNECT within {NETWORK_TIMEOUT_S:g} s")
    elif getattr(reason, "is_failure", False):
        r.problem(f"MQTT broker {settings.address} refused the connection: {reason}")
    else:
        r.line("mqtt check", "reachable, CONNECT accepted")


# -- the command ------------------------------------------------------------------------------------


def build_parser(parser_class, prog: str):
    p = parser_class(prog=prog, description="Print what a bug report needs: versions, models (path, sha256), "
                     "OpenCV build, Qt platform plugin; with --config, the site's MQTT broker and database.")
    p.add_argument("--config", type=Path, metavar="TOML", help="a site.toml: check its [mqtt] broker and [db] database")
    p.add_argument("--debug", action="store_true", help="show tracebacks and native library logs")
    return p


def run(args, stop_signals=None, out=None) -> int:
    if stop_signals is not None:
        stop_signals.restore()  # Ctrl-C simply stops the checks
    site = None
    if args.config is not None:  # first: a bad file is one error line (exit 2) before anything is printed
        site = SiteConfig.load(args.config)
    r = Report(out)
    check_versions(r)
    check_models(r)
    check_assets(r)
    check_opencv(r)
    check_qt(r)
    if site is not None:
        check_site(r, site)
    print(file=r.out)
    if r.problems:
        print(f"doctor: {len(r.problems)} problem{'s' if len(r.problems) != 1 else ''}: " + "; ".join(r.problems),
              file=r.out, flush=True)
        return 1
    print("doctor: ok", file=r.out, flush=True)
    return 0
