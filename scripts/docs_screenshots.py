"""Screenshots of every tab and dialog of the desktop app at 1280x720, for ``docs/screenshots/``.

Starts ``Xvfb`` at the size asked for (and ``openbox``, a real window manager, when installed), then
drives the real app in a child process on Qt's xcb platform and grabs the whole screen (window frame
included) with ``QScreen.grabWindow(0)``:

- ``monitor.png``: the demo clip playing, a face labelled, the side panel;
- ``review.png``: the Review tab on the uncertain crops of a ``maskwatch --headless --collect`` run of
  the demo clip (made first, in a temporary folder);
- ``site.png``: the Site tab connected to a real ``mosquitto`` with a real ``maskwatch serve`` of two
  cameras (the demo clip, looped); skipped, saying so, where mosquitto is not installed;
- ``settings.png``, ``file-dialog.png``: the Settings dialog and Qt's own Open dialog in the theme;
- ``review-empty.png``: the Review tab before any folder is opened (its hint).

    python scripts/docs_screenshots.py                     # -> docs/screenshots/
    python scripts/docs_screenshots.py --size 1366x768 --out /tmp/shots
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from gui_screenshot import start_xvfb  # noqa: E402

CHILD = r'''
import json, sys, time
from pathlib import Path
from PyQt6.QtCore import QSettings, QTimer
from PyQt6.QtWidgets import QApplication, QFileDialog
app = QApplication(sys.argv[:1])
app.setApplicationDisplayName("maskwatch")
from maskwatch.config import Config
from maskwatch.gui.main_window import MainWindow
from maskwatch.gui.settings import GuiSettings
from maskwatch.gui.controls import ControlsDialog

out, tmp, collect, broker_port, site_toml = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
settings = GuiSettings(QSettings(str(tmp / "gui.ini"), QSettings.Format.IniFormat))
c0 = Config()
settings.save_controls(mode=c0.detector.mode, min_score=c0.detector.min_score, vote_window=c0.tracker.vote_window, log=None, snapshots=None, sound=False, realtime=True)
if broker_port:
    settings.q.setValue("site/host", "127.0.0.1"); settings.q.setValue("site/port", int(broker_port))
w = MainWindow(Config(interval_s=2.0), settings)
w.show()
report = {}

def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(); time.sleep(0.02)

def shot(name):
    pump(0.4)
    path = out / name
    w.screen().grabWindow(0).save(str(path))
    report[name] = [w.frameGeometry().width(), w.frameGeometry().height()]

pump(1.0)
w.tabs.setCurrentWidget(w.review)
shot("review-empty.png")
w.tabs.setCurrentIndex(0)
w.start()
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    pump(0.1)
    r = w.last_result
    if r is not None and r.frame.index >= 110 and r.totals.decided >= 1 and len(r.faces):
        break
w.freeze_display = True
shot("monitor.png")
w.freeze_display = False
dialog = ControlsDialog(w.settings, w.base_config, w)
dialog.show()
shot("settings.png")
dialog.close()
fd = QFileDialog(w, "Open a video or image", str(Path.home()))
fd.setOption(QFileDialog.Option.DontUseNativeDialog, True)
fd.show()
shot("file-dialog.png")
fd.close()
w.stop()
pump(2.0)
if collect:
    w.tabs.setCurrentWidget(w.review)
    w.review.open_folder(collect)
    shot("review.png")
if site_toml:
    w.tabs.setCurrentWidget(w.site)
    w.site.open_site_config(site_toml) if hasattr(w.site, "open_site_config") else None
    w.site.connect_broker() if hasattr(w.site, "connect_broker") else None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for t in w.site.tiles.values()) < 2:
        pump(0.2)
    pump(8.0)  # an interval closes, people in view
    shot("site.png")
report["tiles"] = len(w.site.tiles)
print(json.dumps(report))
w.shutdown()
'''


def _end(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    xvfb, display = start_xvfb(f"{args.size}x24")
    try:
        with tempfile.TemporaryDirectory() as tmp_text, contextlib.ExitStack() as stack:
            tmp = Path(tmp_text)
            env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
            env.update(DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=tmp_text,
                       XDG_CONFIG_HOME=str(tmp / "xdg"), PYTHONPATH=str(ROOT))
            if shutil.which("openbox"):
                procs.append(subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            collect = tmp / "collect"
            subprocess.run([sys.executable, "-m", "maskwatch.cli", "--headless", "--quiet", "--collect", str(collect)],
                           cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
            port, site_toml = "", ""
            from services import find_mosquitto

            if find_mosquitto():
                from services import Mosquitto

                from rtsp import RtspServer, rtsp_server_missing

                broker = Mosquitto(tmp / "broker").start()
                stack.callback(broker.stop)
                port = str(broker.port)
                site = tmp / "site.toml"
                if rtsp_server_missing():  # the clip itself: it ends, and its tile with it
                    sources = [ROOT / "assets" / "demo.mp4"] * 2
                else:  # two live cameras: the demo clip looped by the GStreamer RTSP server
                    server = stack.enter_context(RtspServer(ROOT / "assets" / "demo.mp4"))
                    sources = [f"rtsp://127.0.0.1:{server.port}/stream"] * 2
                site.write_text(
                    f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n[db]\nurl = "sqlite:///{tmp}/site.db"\n\n'
                    '[defaults]\ninterval_s = 5\n\n'
                    f'[[cameras]]\nname = "entrance"\nsource = "{sources[0]}"\n\n'
                    f'[[cameras]]\nname = "corridor"\nsource = "{sources[1]}"\n')
                serve = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--config", str(site)],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "serve.log", "w"))
                stack.callback(_end, serve)  # before the broker and the camera go
                site_toml = str(site)
            else:
                print("mosquitto not installed: no site.png")
            r = subprocess.run([sys.executable, "-c", CHILD, str(out), tmp_text, str(collect), port, site_toml],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
            if r.returncode != 0:
                print(r.stderr[-4000:], file=sys.stderr)
                return 1
            print(json.dumps(json.loads(r.stdout.strip().splitlines()[-1]), indent=1))
    finally:
        for p in reversed(procs):
            _end(p)
        xvfb.kill()
        xvfb.wait()
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
