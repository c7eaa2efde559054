"""An app people install (issue 19): the built wheel and sdist carry ``models/`` and ``assets/``, a
wheel installed into a new venv runs the demo from a folder outside the clone, ``maskwatch doctor``
says what a bug report needs, ``maskwatch install-desktop`` puts the app in (and takes it out of) a
user's menu, the shipped desktop entry and systemd unit pass their validators, and warnings raised
by our own modules fail the test run (``filterwarnings`` in ``pyproject.toml``).

The wheel is built from a copy of the source files in a temporary folder (never in the clone: an
in-tree build would write ``build/`` and reuse stale files from it), without build isolation and
without the index, so the test needs no network. The venv it is installed into sees the system
site-packages for the runtime dependencies (a venv that downloads them is a by-hand check, see the
README's "Install as an app" section); the tests check that it imports its own copy of
``maskwatch``, not the clone that the system site-packages has installed in editable mode.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

import maskwatch
from conftest import REPO, cli_env
from maskwatch import desktop, doctor
from maskwatch.errors import MaskwatchError
from services import Mosquitto, free_port

DEMO_TOTALS = ("total: people 1  with_mask 1  without_mask 0  mask_worn_incorrectly 0  compliance 100%  "
               "masked time 100%")
"""The last stdout line of ``maskwatch --headless`` on ``assets/demo.mp4`` (one masked person)."""

SOURCES = ("pyproject.toml", "setup.py", "README.md", "maskwatch", "train", "models", "assets")
"""What a build reads: the metadata, the packages and the two data folders."""

HICOLOR_PNGS = sorted(p.relative_to(REPO / "assets").as_posix()
                      for p in (REPO / "assets" / "icons" / "hicolor").glob("*/apps/maskwatch.png"))

SHIPPED_IN_PACKAGE = (
    "maskwatch/models/mask_classifier.tflite",
    "maskwatch/models/mask_classifier.json",
    "maskwatch/models/face_detection_retinaface_mnet025.onnx",
    "maskwatch/models/face_detection_short_range.tflite",
    "maskwatch/models/face_detection_full_range_sparse.tflite",
    "maskwatch/models/efficientnet_lite0_imagenet.npz",
    "maskwatch/models/MODELS.md",
    "maskwatch/assets/demo.mp4",
    "maskwatch/assets/maskwatch.desktop",
    "maskwatch/assets/maskwatch.service",
    "maskwatch/assets/icons/maskwatch.svg",
    "maskwatch/assets/icons/start.svg",  # one of the window's toolbar icons
    *(f"maskwatch/assets/{png}" for png in HICOLOR_PNGS),
)
"""Files the installed app (and ``maskwatch-train``) needs from the wheel, at their installed paths."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _quiet_env(**extra: str) -> dict:
    """No PYTHONPATH, no MASKWATCH_* overrides: what a user's shell has."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MASKWATCH_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _run(cmd, *, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env or _quiet_env())
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("src") / "maskwatch-src"
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(source_copy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          ".", "-w", out], cwd=source_copy)
    (built,) = out.glob("maskwatch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed (--no-deps, --no-index: the runtime dependencies come from
    the system site-packages the venv sees)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", root], cwd=root.parent)
    _run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=root.parent)
    return root


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working folder outside the clone, with no models/ or assets/ in it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert REPO not in folder.resolve().parents
    return folder


# -- the wheel and the sdist ------------------------------------------------------------------------


def test_wheel_carries_models_assets_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        missing = [name for name in SHIPPED_IN_PACKAGE if name not in names]
        assert not missing, f"{wheel.name} lacks {missing}"
        for name in ("models/mask_classifier.tflite", "models/face_detection_retinaface_mnet025.onnx",
                     "assets/demo.mp4", "assets/maskwatch.desktop", "assets/maskwatch.service"):
            assert _sha256(zf.read(f"maskwatch/{name}")) == _sha256((REPO / name).read_bytes()), name
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    # the data folders live inside the package, not at the top of site-packages
    assert not [n for n in names if n.startswith(("models/", "assets/"))]
    assert "maskwatch = maskwatch.cli:main" in entry_points
    assert "maskwatch-train = train.cli:main" in entry_points
    assert HICOLOR_PNGS, "no PNG app icons in assets/icons/hicolor"


def test_sdist_carries_models_and_assets_and_builds_the_same_wheel(source_copy, wheel, tmp_path):
    """What pip does with an sdist from an index: unpack it and build a wheel from it. The PEP 517
    backend is called directly (``python -m build --sdist --no-isolation`` does the same)."""
    out = tmp_path / "sdist"
    name = _run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                 "print(build_meta.build_sdist(sys.argv[1]))", out], cwd=source_copy).stdout.split()[-1]
    sdist = out / name
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
        tf.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    for shipped in SHIPPED_IN_PACKAGE:
        top = shipped.removeprefix("maskwatch/")  # the sdist keeps the repository's layout
        assert top in members, f"{sdist.name} lacks {top}"
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          ".", "-w", tmp_path / "from-sdist"], cwd=unpacked)
    (again,) = (tmp_path / "from-sdist").glob("maskwatch-*.whl")
    data = lambda whl: sorted(n for n in zipfile.ZipFile(whl).namelist() if n.startswith(("maskwatch/models/",  # noqa: E731
                                                                                         "maskwatch/assets/")))
    assert data(again) == data(wheel)


def test_installed_wheel_imports_its_own_copy(venv, elsewhere):
    probe = ("import maskwatch, maskwatch.paths as p\n"
             "print(maskwatch.__file__); print(p.models_dir()); print(p.demo_clip())\n")
    lines = _run([venv / "bin" / "python", "-c", probe], cwd=elsewhere).stdout.splitlines()
    site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=elsewhere).stdout.strip()).resolve()
    package, models, clip = (Path(line).resolve() for line in lines[-3:])
    assert package == site / "maskwatch" / "__init__.py"
    assert models == site / "maskwatch" / "models"
    assert clip == site / "maskwatch" / "assets" / "demo.mp4" and clip.is_file()
    for path in (package, models, clip):
        assert REPO not in path.parents, f"{path} is the clone's, not the venv's"


def test_installed_wheel_runs_the_demo_outside_the_clone(venv, elsewhere):
    proc = _run([venv / "bin" / "maskwatch", "--headless"], cwd=elsewhere, timeout=240)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines and lines[-1] == DEMO_TOTALS, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not list(elsewhere.iterdir()), "the demo run wrote files into the working folder"


def test_installed_wheel_doctor_finds_the_installed_models(venv, elsewhere):
    proc = subprocess.run([venv / "bin" / "maskwatch", "doctor"], capture_output=True, text=True, timeout=120,
                          cwd=elsewhere, env=_quiet_env())
    site = venv.resolve()
    out = proc.stdout
    assert proc.returncode == 0 and out.rstrip().endswith("doctor: ok"), out[-3000:] + proc.stderr[-2000:]
    assert re.search(rf"package: installed package {re.escape(str(site))}/lib/python[0-9.]+/site-packages/maskwatch$",
                     out, re.M), out
    assert re.search(rf"^models: {re.escape(str(site))}/\S+/maskwatch/models$", out, re.M), out
    assert str(REPO) + os.sep not in out


# -- maskwatch doctor -------------------------------------------------------------------------------


def run_doctor(*args, **env) -> subprocess.CompletedProcess:
    full = cli_env()
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "MASKWATCH_MODELS"):
        full.pop(key, None)
    full.update(env)
    return subprocess.run([sys.executable, "-m", "maskwatch.cli", "doctor", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=full, cwd=REPO)


def doctor_lines(out: str) -> dict[str, str]:
    """``  name: value`` lines -> {name: value} (later sections do not reuse the names we read)."""
    found = {}
    for line in out.splitlines():
        if line.startswith("  ") and ": " in line:
            name, _, value = line.strip().partition(": ")
            found.setdefault(name, value)
    return found


def test_doctor_prints_versions_models_with_sha256_opencv_and_qt():
    from maskwatch.paths import models_dir

    proc = run_doctor(QT_QPA_PLATFORM="offscreen")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.rstrip().splitlines()[-1] == "doctor: ok"
    assert proc.stdout.splitlines()[0] == f"maskwatch {maskwatch.__version__}"
    facts = doctor_lines(proc.stdout)
    for name in ("numpy", "mediapipe", "onnxruntime", "PyQt6", "SQLAlchemy", "paho-mqtt"):
        assert facts[name] == metadata.version(name), name
    assert facts["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    # every model file, with a sha256 that is the file's
    folder = models_dir()
    assert f"models: {folder}" in proc.stdout
    files = sorted(p for p in folder.iterdir() if p.suffix in doctor.MODEL_SUFFIXES)
    assert {p.name for p in files} >= set(doctor.MODEL_FILES)
    for path in files:
        assert facts[path.name] == f"{path.stat().st_size} bytes  sha256 {_sha256(path.read_bytes())}", path.name
    assert facts["mask classifier"].startswith("loads: ")
    # one OpenCV, the one mediapipe brings
    assert re.fullmatch(r"opencv-contrib-python \S+", facts["distributions"]), facts["distributions"]
    import cv2

    assert facts["cv2"].startswith(cv2.__version__ + " ")
    assert facts["FFMPEG"].startswith("YES")
    # the Qt platform plugin, tried in a child process
    assert facts["platform plugin"] == "offscreen (loads)"
    assert "xcb" in facts["platform plugins"].split(", ")


def test_doctor_without_a_display_does_not_try_the_window():
    proc = run_doctor()
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert doctor_lines(proc.stdout)["platform plugin"].startswith("not tried: no DISPLAY or WAYLAND_DISPLAY")


def test_doctor_reports_a_qt_platform_plugin_that_does_not_load():
    proc = run_doctor(QT_QPA_PLATFORM="nosuchplatform")
    assert proc.returncode == 1
    assert "PROBLEM: the Qt platform plugin does not load" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("doctor: 1 problem: the Qt platform plugin does not load")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_doctor_reports_missing_models_where_maskwatch_models_points(tmp_path):
    proc = run_doctor(MASKWATCH_MODELS=str(tmp_path / "none"))
    assert proc.returncode == 1
    assert f"PROBLEM: models folder not found: {tmp_path / 'none'} (unset MASKWATCH_MODELS?)" in proc.stdout


def site_file(path: Path, *, mqtt_port: int | None, db_url: str, mqtt_extra: str = "") -> Path:
    text = f'[db]\nurl = "{db_url}"\n\n[[cameras]]\nname = "entrance"\nsource = "{REPO / "assets" / "demo.mp4"}"\n'
    if mqtt_port is not None:
        text += f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n{mqtt_extra}'
    path.write_text(text)
    return path


@pytest.mark.mqtt
def test_doctor_with_a_site_reaches_its_broker_and_database(tmp_path, mosquitto):
    db = tmp_path / "history.db"
    sqlite3.connect(db).close()  # an existing (empty) SQLite database
    site = site_file(tmp_path / "site.toml", mqtt_port=mosquitto.port, db_url=f"sqlite:///{db}")
    proc = run_doctor("--config", site)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    facts = doctor_lines(proc.stdout.split(f"site: {site}", 1)[1])
    assert facts["camera entrance"] == str(REPO / "assets" / "demo.mp4")
    assert facts["database"] == f"sqlite:///{db}"
    assert re.fullmatch(r"reachable \(SELECT 1 in \d+ ms\)", facts["database check"])
    assert facts["mqtt"] == f"127.0.0.1:{mosquitto.port}, login: none"
    assert facts["mqtt check"] == "reachable, CONNECT accepted"


@pytest.mark.mqtt
def test_doctor_with_a_site_login_hides_the_password_and_says_when_it_is_refused(tmp_path):
    with Mosquitto(tmp_path / "broker", users={"cam": "right-pw-4821"}) as broker:
        ok = run_doctor("--config", site_file(tmp_path / "ok.toml", mqtt_port=broker.port, db_url="sqlite://",
                                              mqtt_extra='username = "cam"\npassword = "right-pw-4821"\n'))
        bad = run_doctor("--config", site_file(tmp_path / "bad.toml", mqtt_port=broker.port, db_url="sqlite://",
                                               mqtt_extra='username = "cam"\npassword = "wrong-pw-7730"\n'))
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert doctor_lines(ok.stdout)["mqtt"] == f"127.0.0.1:{broker.port}, login: username and password set"
    assert doctor_lines(ok.stdout)["mqtt check"] == "reachable, CONNECT accepted"
    assert doctor_lines(ok.stdout)["database check"] == "in-memory / URI SQLite: nothing to reach"
    assert bad.returncode == 1
    assert f"PROBLEM: MQTT broker 127.0.0.1:{broker.port} refused the connection" in bad.stdout
    for proc in (ok, bad):
        assert "right-pw-4821" not in proc.stdout + proc.stderr
        assert "wrong-pw-7730" not in proc.stdout + proc.stderr


def test_doctor_with_a_site_whose_broker_is_down_and_database_not_yet_created(tmp_path):
    port = free_port()  # nothing listens there
    site = site_file(tmp_path / "site.toml", mqtt_port=port, db_url=f"sqlite:///{tmp_path / 'later.db'}")
    proc = run_doctor("--config", site)
    assert proc.returncode == 1
    facts = doctor_lines(proc.stdout.split(f"site: {site}", 1)[1])
    assert facts["database check"] == f"later.db does not exist yet; serve creates it in {tmp_path} (writable)"
    assert not (tmp_path / "later.db").exists()
    assert f"PROBLEM: MQTT broker 127.0.0.1:{port} not reachable" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith(f"doctor: 1 problem: MQTT broker 127.0.0.1:{port}")


def test_doctor_with_a_site_file_that_is_not_there_is_one_error_line(tmp_path):
    proc = run_doctor("--config", tmp_path / "nosuch.toml")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskwatch: error: ") and "nosuch.toml" in lines[0], proc.stderr


# -- maskwatch install-desktop ----------------------------------------------------------------------


def run_install_desktop(data_home: Path, *args) -> subprocess.CompletedProcess:
    env = cli_env()
    env["XDG_DATA_HOME"] = str(data_home)
    return subprocess.run([sys.executable, "-m", "maskwatch.cli", "install-desktop", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def user_files(data_home: Path) -> set[str]:
    """What is under the data folder, less the caches the desktop tools write next to our files."""
    caches = {"mimeinfo.cache", "icon-theme.cache"}
    return {p.relative_to(data_home).as_posix() for p in data_home.rglob("*") if p.is_file() and p.name not in caches}


def test_install_desktop_writes_the_entry_and_icons_and_uninstall_removes_them(tmp_path):
    home = tmp_path / "share"
    proc = run_install_desktop(home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {"applications/maskwatch.desktop", "icons/hicolor/scalable/apps/maskwatch.svg",
                *(f"icons/{png.removeprefix('icons/')}" for png in HICOLOR_PNGS)}
    assert user_files(home) == expected
    assert len(HICOLOR_PNGS) >= 5
    for png in HICOLOR_PNGS:
        assert (home / "icons" / png.removeprefix("icons/")).read_bytes() == (REPO / "assets" / png).read_bytes()
    assert (home / "icons/hicolor/scalable/apps/maskwatch.svg").read_bytes() == \
        (REPO / "assets/icons/maskwatch.svg").read_bytes()
    entry = (home / "applications" / "maskwatch.desktop").read_text()
    exec_line = next(line for line in entry.splitlines() if line.startswith("Exec="))
    program = exec_line.removeprefix("Exec=").strip('"')
    assert os.path.isabs(program) and os.access(program, os.X_OK), exec_line
    assert f"TryExec={program}" in entry.splitlines()
    assert "Icon=maskwatch" in entry.splitlines()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(home / "applications" / "maskwatch.desktop")],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    assert f"installed {home / 'applications' / 'maskwatch.desktop'}" in proc.stdout

    # again: the same files (overwritten), then --uninstall takes all of them out
    assert run_install_desktop(home).returncode == 0
    assert user_files(home) == expected
    gone = run_install_desktop(home, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert user_files(home) == set()
    assert gone.stdout.count("removed ") == len(expected)
    again = run_install_desktop(home, "--uninstall")
    assert again.returncode == 0 and again.stdout.strip() == f"nothing to remove under {home}"


def test_install_desktop_data_home_option_wins_over_xdg_data_home(tmp_path):
    proc = run_install_desktop(tmp_path / "xdg", "--data-home", tmp_path / "other")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "other" / "applications" / "maskwatch.desktop").is_file()
    assert not (tmp_path / "xdg").exists()


def test_install_desktop_into_a_folder_it_cannot_write_is_one_error_line(tmp_path):
    blocker = tmp_path / "share"
    blocker.write_text("a file where the data folder should be")
    proc = run_install_desktop(blocker)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskwatch: error: cannot write "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_desktop_entry_quotes_an_exec_path_with_a_space(tmp_path):
    entry = desktop.desktop_entry("/opt/my apps/bin/maskwatch")
    lines = entry.splitlines()
    assert 'Exec="/opt/my apps/bin/maskwatch"' in lines
    assert "TryExec=/opt/my apps/bin/maskwatch" in lines  # TryExec is a plain path, not a command line
    if shutil.which("desktop-file-validate"):
        path = tmp_path / "maskwatch.desktop"
        path.write_text(entry)
        check = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_install_desktop_on_windows_and_macos_says_what_to_do_instead(monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)
    args = desktop.build_parser(__import__("argparse").ArgumentParser, "maskwatch install-desktop").parse_args([])
    with pytest.raises(MaskwatchError, match="install-desktop is for Linux desktops; on Windows"):
        desktop.run(args)


# -- the shipped desktop entry and systemd unit ------------------------------------------------------


def test_shipped_desktop_entry_validates():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (Debian: desktop-file-utils, scripts/install_test_deps.sh)")
    proc = subprocess.run([tool, str(REPO / "assets" / "maskwatch.desktop")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == "", "desktop-file-validate has hints or warnings:\n" + proc.stdout + proc.stderr


SHIPPED_EXEC = "/opt/maskwatch/bin/maskwatch"
"""The program the shipped unit runs: the venv its install comment makes."""


def test_shipped_systemd_unit_verifies(tmp_path):
    """``systemd-analyze verify`` also checks that ExecStart's program exists, and
    /opt/maskwatch/bin/maskwatch (the install path the unit documents) does not exist here. So the
    copy verified is the shipped unit with only that program path replaced by an executable that
    exists (this Python's ``maskwatch`` script, else the Python itself); every other line, the
    sandbox included, is verified as shipped."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd, scripts/install_test_deps.sh)")
    shipped = (REPO / "assets" / "maskwatch.service").read_text()
    lines = shipped.splitlines()
    assert f"ExecStart={SHIPPED_EXEC} serve --config /etc/maskwatch/site.toml" in lines
    for required in ("Restart=on-failure", "ProtectSystem=strict", "ProtectHome=true", "NoNewPrivileges=true",
                     "User=maskwatch", "StateDirectory=maskwatch", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert required in lines, required
    program = shutil.which("maskwatch", path=str(Path(sys.executable).parent)) or sys.executable
    copy = tmp_path / "maskwatch.service"  # the unit name is the file name: keep it
    copy.write_text(shipped.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={program} "))
    assert len([a for a, b in zip(shipped.splitlines(), copy.read_text().splitlines()) if a != b]) == 1
    proc = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "maskwatch.service" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_unmodified_unit_fails_verify_only_for_the_missing_program(tmp_path):
    """The reason the test above verifies a copy: the shipped file itself fails exactly for that."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd, scripts/install_test_deps.sh)")
    if os.path.exists(SHIPPED_EXEC):
        pytest.skip(f"{SHIPPED_EXEC} exists on this machine")
    copy = tmp_path / "maskwatch.service"
    shutil.copyfile(REPO / "assets" / "maskwatch.service", copy)
    proc = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert complaints == [f"maskwatch.service: Command {SHIPPED_EXEC} is not executable: No such file or directory"]


# -- warnings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["maskwatch.fake", "maskwatch", "train.fake", "train"])
@pytest.mark.parametrize("category", [DeprecationWarning, UserWarning, RuntimeWarning])
def test_a_warning_from_our_modules_fails_the_test(module, category):
    """pyproject's filterwarnings: any warning attributed to maskwatch/ or train/ is an error."""
    with pytest.raises(category, match="ours"):
        warnings.warn_explicit("ours", category, filename=f"{module.replace('.', '/')}.py", lineno=1, module=module)


@pytest.mark.parametrize("module", ["maskwatchers", "trainer", "keras.src.trainers"])
def test_a_warning_from_other_modules_does_not_fail_the_test(module):
    """Only our packages: the regex does not catch a third-party module whose name starts alike."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit("theirs", UserWarning, filename=f"{module}.py", lineno=1, module=module)
    assert [str(w.message) for w in caught] == ["theirs"]
