"""How many cameras one box holds under ``maskwatch serve``: N cameras x ``detect_every``.

Each configuration runs a real ``maskwatch serve`` (one worker process per camera) against the
RTSP test server (``scripts/rtsp_server.py`` through tests/support/rtsp.py: every camera is its own RTSP
session of a looping clip in which two people walk across, 640x360 at 15 fps), the shipped
classifier and the default detector, a SQLite history database and a real Mosquitto broker
(tests/support/services.py). After every camera is live and a warm-up, it measures for ``--seconds``:

- per-camera fps: frames processed in the window / its length (the workers' own frame counts);
- capture-to-label latency: ``Stats.latency_ms`` of the frames sampled every ``[serve] stats_every_s``;
- CPU % (of one core) and RSS (MiB) per worker: ``/proc/<pid>/stat`` and ``status``;
- MQTT: time from an interval's end to its row arriving on a subscriber of ``<prefix>/<camera>/intervals``
  (closing the interval, writing the database row, the publisher waking up, QoS 1 to the broker,
  the broker to the subscriber).

    nice -n 5 python benchmarks/site_cameras.py --seconds 25 \\
        --out benchmarks/results/site_cameras.json --md benchmarks/results/site_cameras.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "support")]

from conftest import cli_env, write_known_faces_clip  # noqa: E402
from rtsp import RtspServer, rtsp_server_missing  # noqa: E402
from services import Mosquitto, MqttRecorder  # noqa: E402

STATS = re.compile(r"^maskwatch serve: (?P<camera>[\w-]+): (?P<fps>[\d.]+) fps, capture to label (?P<lat>[\d.]+) ms, "
                   r"(?P<frames>\d+) frames$")
STARTED = re.compile(r"^maskwatch serve: (?P<camera>[\w-]+): worker (?:re)?started .*\(pid (?P<pid>\d+)\)$")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Serve:
    """A ``maskwatch serve`` process whose stderr lines are read (and timed) in a thread."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                                     cwd=config.parent)
        self.stats: list[tuple[float, str, float, float, int]] = []  # (time, camera, fps, latency, frames)
        self.pids: dict[str, int] = {}
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.lines.append(line)
            if m := STATS.match(line):
                self.stats.append((time.monotonic(), m["camera"], float(m["fps"]), float(m["lat"]), int(m["frames"])))
            elif m := STARTED.match(line):
                self.pids[m["camera"]] = int(m["pid"])

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=120)
        self._thread.join(timeout=10)
        return out


def run_config(n: int, every: int, clip_url: str, broker: Mosquitto, seconds: float, work: Path, model: Path,
               warmup: float) -> dict:
    folder = work / f"n{n}_every{every}"
    folder.mkdir(parents=True)
    cameras = [f"cam{i + 1}" for i in range(n)]
    text = f"""[defaults]
interval_s = 5
model = "{model}"
detector.every_n = {every}

[serve]
stats_every_s = 1

[mqtt]
host = "127.0.0.1"
port = {broker.port}
prefix = "bench{n}x{every}"
discovery = false
"""
    for name in cameras:
        text += f'\n[[cameras]]\nname = "{name}"\nsource = "{clip_url}"\n'
    (folder / "site.toml").write_text(text)
    recorder = MqttRecorder(broker, f"bench{n}x{every}/+/intervals").connect()
    received: list[tuple[float, str]] = []
    original = recorder.client.on_message

    def on_message(client, userdata, message):
        received.append((time.time(), message.payload.decode()))
        original(client, userdata, message)

    recorder.client.on_message = on_message
    serve = Serve(folder / "site.toml")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # every camera live: its first stats line
            if {c for _, c, *_ in serve.stats} >= set(cameras):
                break
            if serve.proc.poll() is not None:
                raise RuntimeError("serve exited:\n" + "\n".join(serve.lines[-20:]))
            time.sleep(0.2)
        else:
            raise RuntimeError("cameras not live within 240 s:\n" + "\n".join(serve.lines[-20:]))
        time.sleep(warmup)
        t0 = time.monotonic()
        cpu0 = {c: cpu_seconds(serve.pids[c]) for c in cameras}
        time.sleep(seconds)
        t1 = time.monotonic()
        cpu1 = {c: cpu_seconds(serve.pids[c]) for c in cameras}
        rss = {c: rss_mib(serve.pids[c]) for c in cameras}
        window = [s for s in serve.stats if t0 <= s[0] <= t1]
        per_camera = {}
        for c in cameras:
            mine = [s for s in window if s[1] == c]
            fps = (mine[-1][4] - mine[0][4]) / (mine[-1][0] - mine[0][0]) if len(mine) >= 2 else float("nan")
            per_camera[c] = {
                "fps": round(fps, 2),
                "latency_ms_median": round(statistics.median(s[3] for s in mine), 1) if mine else None,
                "latency_ms_max": round(max(s[3] for s in mine), 1) if mine else None,
                "cpu_percent": round(100 * (cpu1[c] - cpu0[c]) / (t1 - t0), 1),
                "rss_mib": round(rss[c], 1),
            }
    finally:
        serve.stop()
        recorder.close()
    mqtt_ms = []
    for at, payload in received:
        row = json.loads(payload)
        mqtt_ms.append(1000 * (at - row["end_ts"]))
    return {
        "cameras": n, "detect_every": every, "seconds": round(t1 - t0, 1), "per_camera": per_camera,
        "fps_mean": round(statistics.mean(v["fps"] for v in per_camera.values()), 2),
        "latency_ms_median": round(statistics.median(v["latency_ms_median"] for v in per_camera.values()), 1),
        "cpu_percent_total": round(sum(v["cpu_percent"] for v in per_camera.values()), 1),
        "rss_mib_mean": round(statistics.mean(v["rss_mib"] for v in per_camera.values()), 1),
        "mqtt_interval_to_subscriber_ms": {
            "rows": len(mqtt_ms),
            "median": round(statistics.median(mqtt_ms), 1) if mqtt_ms else None,
            "max": round(max(mqtt_ms), 1) if mqtt_ms else None,
        },
    }


def markdown(report: dict) -> str:
    lines = [
        "# maskwatch serve: cameras per box",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}. **{report['note']}**",
        "",
        "Each camera: an RTSP session of a looping 640x360 15 fps clip with two people walking across "
        "(scripts/rtsp_server.py), the shipped classifier, the default detector (retina); "
        f"{report['seconds']:g} s measured per configuration after a {report['warmup']:g} s warm-up.",
        "",
        "| cameras | detect_every | fps per camera (mean; min) | capture to label, median ms | CPU % per worker "
        "(sum) | RSS MiB per worker | MQTT interval end -> subscriber, median ms (rows) |",
        "|---:|---:|---|---:|---|---:|---|",
    ]
    for r in report["results"]:
        fps = [v["fps"] for v in r["per_camera"].values()]
        cpu = [v["cpu_percent"] for v in r["per_camera"].values()]
        mq = r["mqtt_interval_to_subscriber_ms"]
        lines.append(f"| {r['cameras']} | {r['detect_every']} | {r['fps_mean']:.1f}; {min(fps):.1f} | "
                     f"{r['latency_ms_median']:.0f} | {statistics.mean(cpu):.0f} ({r['cpu_percent_total']:.0f}) | "
                     f"{r['rss_mib_mean']:.0f} | {mq['median'] if mq['median'] is not None else '-'} ({mq['rows']}) |")
    lines += ["", "fps: frames a worker processed in the window / the window (the source delivers 15 fps; a "
              "live source keeps only the newest frame, so a slower worker drops frames rather than lagging). "
              "CPU %: of one core. MQTT: from the end of an interval (interval_s = 5) to the row arriving "
              "on a subscriber (row written, publisher woken, QoS 1 via the broker).", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cameras", default="1,2,4", help="camera counts (default 1,2,4)")
    p.add_argument("--detect-every", default="1,3", help="detector.every_n values (default 1,3)")
    p.add_argument("--seconds", type=float, default=25.0, help="measured seconds per configuration")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after every camera is live, not measured")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "mask_classifier.tflite")
    p.add_argument("--note", default="5 other agents shared the machine's 2 cores during this run: the numbers "
                                     "are a lower bound for a dedicated box.")
    p.add_argument("--out", type=Path, help="JSON results")
    p.add_argument("--md", type=Path, help="Markdown table")
    args = p.parse_args()
    reason = rtsp_server_missing()
    if reason:
        print(f"site_cameras: cannot run the RTSP test server: {reason}", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="maskwatch-site-bench-") as tmp:
        work = Path(tmp)
        clip = write_known_faces_clip(work / "two_people.mp4")["path"]
        with RtspServer(clip) as server, Mosquitto(work / "broker") as broker:
            for n in (int(v) for v in args.cameras.split(",")):
                for every in (int(v) for v in args.detect_every.split(",")):
                    print(f"site_cameras: {n} camera(s), detect_every {every} ...", file=sys.stderr, flush=True)
                    r = run_config(n, every, server.url, broker, args.seconds, work, args.model.resolve(), args.warmup)
                    print(f"  fps {r['fps_mean']}, latency {r['latency_ms_median']} ms, CPU {r['cpu_percent_total']} %, "
                          f"RSS {r['rss_mib_mean']} MiB, MQTT {r['mqtt_interval_to_subscriber_ms']}", file=sys.stderr,
                          flush=True)
                    results.append(r)
    report = {
        "command": "nice -n 5 python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "note": args.note, "seconds": args.seconds, "warmup": args.warmup, "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
