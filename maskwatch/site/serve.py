"""``maskwatch serve --config site.toml``: every camera of a site, one supervised worker process each.

This module is the command's glue: its arguments, its log lines (``maskwatch serve: [camera: ]
message``, one writer of stderr, every credential redacted), its signals and its summary. The work
is done by :mod:`maskwatch.site.supervisor` (:class:`Supervisor`: starts, watches, restarts and
stops the workers), :mod:`maskwatch.site.worker` (one camera's process) and
:mod:`maskwatch.site.messages` (what a worker tells the supervisor).

Signals: SIGTERM / SIGINT (Ctrl-C reaches every process of the terminal's group; workers ignore it,
the supervisor decides) -> every worker gets SIGTERM, writes its last partial interval and exits;
the supervisor waits ``stop_timeout_s`` (then SIGKILL), publishes the final states, closes MQTT
(``offline``) and exits 0 with one summary line per camera on stdout. SIGHUP is forwarded to the
workers, which reload their classifier model from disk.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from maskwatch.site.config import SiteConfig
from maskwatch.site.messages import EXIT_PERMANENT, EXIT_RETRY, STATS_EVERY_S  # noqa: F401 - re-exported
from maskwatch.sources.spec import redact

_MOVED = {  # importable from here as before, loaded on first use (they bring the camera runtime)
    "Supervisor": "maskwatch.site.supervisor", "reload_on_sighup": "maskwatch.site.supervisor",
    "StatusSink": "maskwatch.site.worker", "_worker_run": "maskwatch.site.worker", "in_view": "maskwatch.site.worker",
    "worker_main": "maskwatch.site.worker", "stamped_recording": "maskwatch.sinks.names",
}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser(parser_class, prog: str) -> argparse.ArgumentParser:
    p = parser_class(prog=prog, description="Run every camera of a site (site.toml), one supervised worker process "
                                            "per camera, with the history database and MQTT.")
    p.add_argument("--config", required=True, type=Path, metavar="SITE_TOML", help="the site file (see docs/site.md)")
    p.add_argument("--debug", action="store_true", help="debug log lines (fps and latency per camera), tracebacks")
    return p


def run(args: argparse.Namespace, stop_signals) -> int:
    # lazy: the supervisor brings SQLAlchemy, paho-mqtt and the sinks (OpenCV): not for --help or a bad argument
    from maskwatch.site.supervisor import Supervisor, check_outputs, reload_on_sighup

    site = SiteConfig.load(args.config)
    check_outputs(site)  # a bad output path fails now, in one line
    debug = bool(getattr(args, "debug", False) or os.environ.get("MASKWATCH_DEBUG", "") not in ("", "0"))
    handler = _setup_logging(debug)
    try:
        supervisor = Supervisor(site, debug=debug)
        stop_signals.attach(supervisor)
        if stop_signals.received is not None:
            return 0
        with reload_on_sighup(supervisor):
            supervisor.run()
        for line in supervisor.summary():
            print(line, file=sys.stdout, flush=True)
        failed = [w.name for w in supervisor.workers if w.how_ended.startswith("failed")]
        if failed and stop_signals.received is None:  # every camera ended and some could not work: say so
            return 1
        return 0
    finally:
        logging.getLogger("maskwatch").removeHandler(handler)


class _RedactingFormatter(logging.Formatter):
    """``maskwatch serve: [camera: ]message``, one line, every credential hidden."""

    def format(self, record: logging.LogRecord) -> str:
        camera = getattr(record, "camera", None)
        text = " ".join(redact(record.getMessage()).split())
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"maskwatch serve: {camera + ': ' if camera else ''}{level}{text}"


def _setup_logging(debug: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter())
    root = logging.getLogger("maskwatch")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False  # the CLI's own root handler would print each line a second time
    return handler
