"""Screenshot of the desktop app under a real X server (Xvfb, Qt's xcb platform) on the demo clip.

Starts ``Xvfb :N -screen 0 1280x800x24`` on a free display, runs ``python -m maskwatch.gui`` there
with ``QT_QPA_PLATFORM=xcb`` and ``QT_DEBUG_PLUGINS=1``, waits until the app has drawn a labelled
box (a person whose label was decided) and has saved its window grab, then stops Xvfb.

Writes ``<out>.png``, ``<out>.png.json`` (what the view drew, which plugin folder Qt used) and
``<out>.qt.log`` (the app's stderr, with Qt's plugin loading). Exit code 0 when the PNG shows a
labelled box and Qt loaded ``libqxcb.so`` from PyQt6's own plugin folder.

    python scripts/gui_screenshot.py --out /tmp/maskwatch_gui.png
    python scripts/gui_screenshot.py --model tests/fixtures/tiny_classifier.tflite --out shot.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_display(start: int = 90, stop: int = 400) -> int:
    """A display number with neither a lock file nor a socket."""
    for n in range(start, stop):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


def start_xvfb(size: str = "1280x800x24", timeout: float = 10.0) -> tuple[subprocess.Popen, int]:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise FileNotFoundError("Xvfb not found (Debian: apt-get install xvfb; or bash scripts/install_test_deps.sh)")
    for _attempt in range(5):
        n = free_display()
        proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", size, "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                return proc, n
            if proc.poll() is not None:
                break  # lost a race for this display number: try the next one
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise RuntimeError("Xvfb did not start")


def plugin_loaded_from(log_text: str) -> str | None:
    """The file Qt loaded the xcb platform plugin from (QT_DEBUG_PLUGINS output), or None."""
    m = re.search(r'"([^"]*libqxcb\.so)" loaded library', log_text)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "maskwatch_gui.png"))
    parser.add_argument("--source", default=str(ROOT / "assets" / "demo.mp4"))
    parser.add_argument("--model", help="classifier (default: models/mask_classifier.tflite)")
    parser.add_argument("--detector", help="face detector mode (default: the app's)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for a labelled box")
    parser.add_argument("--min-frame", type=int, default=110,
                        help="grab the first labelled box from this frame on (demo clip: the walker's face "
                             "is large from ~3.5 s = frame 105; earlier boxes are a wall ornament)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds per interval (chart points)")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in (out, out.with_suffix(out.suffix + ".json")):
        stale.unlink(missing_ok=True)
    qt_log = out.with_suffix(".qt.log")
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", QT_DEBUG_PLUGINS="1",
                       XDG_RUNTIME_DIR=tmp, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
            cmd = [sys.executable, "-m", "maskwatch.gui", args.source, "--screenshot", str(out),
                   "--screenshot-timeout", str(args.timeout),
                   "--screenshot-min-frame", str(args.min_frame), "--settings-file", str(Path(tmp) / "gui.ini"),
                   "--realtime", "off", "--interval", str(args.interval), "--log", str(Path(tmp) / "counts.csv")]
            if args.model:
                cmd += ["--model", args.model]
            if args.detector:
                cmd += ["--detector", args.detector]
            t0 = time.monotonic()
            with open(qt_log, "w") as log:
                proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout + 60)
            seconds = time.monotonic() - t0
            rows = (Path(tmp) / "counts.csv").read_text().count("\n") - 1 if (Path(tmp) / "counts.csv").exists() else 0
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(5)
        except subprocess.TimeoutExpired:
            xvfb.kill()
    log_text = qt_log.read_text(errors="replace")
    plugin = plugin_loaded_from(log_text)
    report_path = out.with_suffix(out.suffix + ".json")
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update({"xvfb_display": display, "xcb_plugin_loaded": plugin, "app_exit_code": proc.returncode,
                   "app_seconds": round(seconds, 1), "csv_rows_after_close": rows})
    if report_path.exists():
        report_path.write_text(json.dumps(report, indent=2))
    own_plugin = plugin is not None and "PyQt6" in plugin and "cv2" not in plugin
    print(f"screenshot: {out} ({'ok' if out.exists() else 'missing'}), labelled boxes: {report.get('labelled_boxes')}, "
          f"platform: {report.get('platform')}, xcb plugin: {plugin}, app {seconds:.1f} s, exit {proc.returncode}, "
          f"CSV rows after close: {rows}")
    if proc.returncode != 0:
        print(log_text[-3000:], file=sys.stderr)
    return 0 if (proc.returncode == 0 and out.exists() and own_plugin) else 1


if __name__ == "__main__":
    sys.exit(main())
