"""The ``maskwatch`` command.

::

    maskwatch                                   # the desktop app (PyQt6)
    maskwatch --headless [--source S] [--log counts.csv] [--events events.jsonl] [--interval 60]
    maskwatch detect PATH... [--json]           # faces and labels of images and folders
    maskwatch bench --source FILE [--frames N] [--json out.json]
    maskwatch serve --config site.toml          # every camera of a site, MQTT, history database
    maskwatch aggregate --config site.toml      # broker -> one history database (cameras on many hosts)
    maskwatch report --db URL [--since 7d]      # compliance per camera per day from the history
    maskwatch doctor [--config site.toml]       # versions, models + sha256, OpenCV, Qt, MQTT/DB reachability
    maskwatch install-desktop [--uninstall]     # menu entry + icons for this user (Linux)

Every user error (missing file, bad URL, corrupt video, unreadable image, bad model, bad flag, bad
TOML) is ONE line on stderr, ``maskwatch: error: ...``, and a non-zero exit, never a traceback;
an unexpected exception is one line too and exit 1 (``--debug`` or ``MASKWATCH_DEBUG=1`` shows
the traceback). The native libraries' console chatter (TFLite / MediaPipe INFO and WARNING lines
written straight to file descriptor 2) is hidden unless ``--debug``.

``maskwatch detect --json`` prints one line per image, exactly::

    {"image": "<path>", "faces": [{"box": [x1, y1, x2, y2], "label": "with_mask", "score": 0.97,
      "probs": {"with_mask": 0.97, "without_mask": 0.02, "mask_worn_incorrectly": 0.01}}]}

``box`` is in pixels of the original image (rounded to 0.1 px); ``label`` is the classifier's
most probable class and ``score`` the classifier's probability of that label (the face
detector's own confidence is not part of the schema).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from maskwatch import __version__
from maskwatch.cli_text import PROG, error_line
from maskwatch.config import Config
from maskwatch.detection import registry as detection_registry
from maskwatch.errors import MaskwatchError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line: ``maskwatch: error: <what> (see --help)``."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


# -- argument types (each rejects a bad value with a one-line message) ---------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _detector_modes() -> tuple[str, ...]:
    return detection_registry.modes()  # the registry alone: no model runtime for --help


def _detector_help() -> str:
    return "face detector mode: " + "; ".join(detection_registry.get(mode).describe()
                                              for mode in detection_registry.modes())


def _add_pipeline_options(p: argparse.ArgumentParser, source_help: str) -> None:
    p.add_argument("--source", help=source_help)
    p.add_argument("--detector", choices=_detector_modes(), help=_detector_help())
    p.add_argument("--min-score", type=_probability, metavar="F", help="minimum face detector score (0-1)")
    p.add_argument("--detect-every", type=_positive_int, metavar="N",
                   help="run the face detector every N frames, track in between")
    p.add_argument("--model", type=Path, metavar="PATH", help="mask classifier .tflite (its .json next to it)")
    p.add_argument("--config", type=Path, metavar="TOML", help="configuration file (flags override it)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and native library logs")


def _main_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Real-time face-mask compliance monitor. Without --headless: the desktop app. "
        "Subcommands: 'maskwatch detect PATH... [--json]', 'maskwatch bench --source FILE', "
        "'maskwatch serve --config site.toml', 'maskwatch aggregate --config site.toml', 'maskwatch report --db URL', "
        "'maskwatch doctor [--config site.toml]', 'maskwatch install-desktop'.",
    )
    p.add_argument("--version", action="version", version=f"maskwatch {__version__}")
    p.add_argument("--headless", action="store_true", help="run without a window: log counts to CSV/JSONL")
    _add_pipeline_options(p, "webcam index (0), rtsp:// or http:// URL, video file or image folder "
                             "(default: the demo clip)")
    p.add_argument("--log", type=Path, metavar="CSV", help="append one row per interval to this CSV")
    p.add_argument("--events", type=Path, metavar="JSONL", help="append events (person seen, label decided)")
    p.add_argument("--interval", type=_positive_float, metavar="SECONDS", help="interval length (default 60)")
    p.add_argument("--snapshots", type=Path, metavar="DIR",
                   help="save a frame per person decided without_mask / mask_worn_incorrectly")
    p.add_argument("--save-video", type=Path, metavar="FILE",
                   help="--headless: write every processed frame with boxes, labels and track ids to a new "
                        "video (.mp4, .avi, .mkv, .mov) at the source's frame rate (the app: Record, Ctrl+R)")
    p.add_argument("--collect", type=Path, metavar="DIR",
                   help="save the face crops the model is least sure of, with DIR/collected.csv, to label in "
                        "the app's Review tab (docs/review-loop.md)")
    p.add_argument("--vote-window", type=_positive_int, metavar="N", help="frames a track's label is voted over")
    p.add_argument("--realtime", action="store_true", help="files: pace to the file's frame rate")
    p.add_argument("--max-reconnects", type=_non_negative_int, metavar="N",
                   help="cameras: give up after N reconnects (0: fail at once if the camera cannot be opened); "
                        "default: retry forever, also a camera that is down at start")
    p.add_argument("--quiet", action="store_true", help="no per-interval lines, only the final totals")
    return p


def _detect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} detect", description="Faces and mask labels of images (files or folders).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON line per image")
    p.add_argument("--detector", choices=_detector_modes(), help=_detector_help())
    p.add_argument("--min-score", type=_probability, metavar="F", help="minimum face detector score (0-1)")
    p.add_argument("--model", type=Path, metavar="PATH", help="mask classifier .tflite (its .json next to it)")
    p.add_argument("--config", type=Path, metavar="TOML", help="configuration file (flags override it)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and native library logs")
    return p


def _bench_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} bench", description="Per-stage timings, fps, faces per frame and peak memory.")
    _add_pipeline_options(p, "video file (default: the demo clip)")
    p.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames (default: whole file)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="frames left out of the timings (default 5)")
    p.add_argument("--streams", type=_positive_int, metavar="N",
                   help="N copies of the source at once, one process each: aggregate fps and each stream's latency")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the report as JSON")
    return p


# -- configuration --------------------------------------------------------------------------------


def build_config(args: argparse.Namespace):
    """Defaults, then the TOML file (``--config``), then the flags that were given, checked:
    :meth:`maskwatch.config.Config.load` (the one merge; a bad value is one line naming it)."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    flags = {
        "source": get("source"),
        "model": get("model"),
        "log": get("log"),
        "events": get("events"),
        "snapshots": get("snapshots"),
        "save_video": get("save_video"),  # --save-video: the annotated video sink (maskwatch.sinks.video)
        "interval_s": get("interval"),
        "detector.mode": get("detector"),  # the mode's own default score, unless --min-score is given
        "detector.min_score": get("min_score"),
        "detector.every_n": get("detect_every"),
        "tracker.vote_window": get("vote_window"),  # caps tracker.min_votes
        "sources.realtime": True if get("realtime") else None,
        "sources.max_reconnects": get("max_reconnects"),
        "collect.folder": get("collect"),  # --collect: uncertain crops for the review loop (maskwatch.sinks.collect)
    }
    return Config.load(get("config"), flags)


# -- output helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def _native_stderr_hidden(enabled: bool):
    """Point file descriptor 2 at /dev/null (TFLite/MediaPipe/absl write there directly) while
    Python's ``sys.stderr`` keeps writing to the real stderr."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = open(saved, "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    old = sys.stderr
    sys.stderr = real
    try:
        yield
    finally:
        real.flush()
        os.dup2(saved, 2)
        sys.stderr = old
        real.close()


class _StopSignals:
    """SIGINT / SIGTERM handling from the first line of :func:`main`.

    A signal during start-up (argument parsing, model loading: seconds) is remembered and stops the
    headless run as soon as its monitor exists, so even an early Ctrl-C or SIGTERM ends in a clean
    exit 0 (the partial interval written if there is one), never a traceback or 143. A second
    signal stops waiting (``KeyboardInterrupt``: exit 130), except while the monitor is finishing
    (writing the last row, finalising the video: quick, and interrupting it would leave a
    half-written file), when it is ignored. Other commands get the previous handlers back once
    they are known.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._target = None
        self._previous: dict[int, object] = {}

    def install(self) -> "_StopSignals":
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (embedded use): leave signals alone
                break
        return self

    def restore(self) -> None:
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def attach(self, monitor) -> None:
        """Stop ``monitor`` on the next signal, or now if one came already."""
        self._target = monitor
        if self.received is not None:
            monitor.stop()

    def _handle(self, signum, _frame) -> None:
        if self.received is not None:  # a second signal: stop waiting, unless the files are being closed
            if getattr(self._target, "finishing", False):
                return
            raise KeyboardInterrupt
        self.received = signum
        if self._target is not None:
            self._target.stop()


def main(argv: list[str] | None = None) -> int:
    stop_signals = _StopSignals().install()  # first of all: heavy imports follow
    try:
        return _main(argv, stop_signals)
    except KeyboardInterrupt:  # a second signal during start-up
        return 130
    finally:
        stop_signals.restore()


SITE_COMMANDS = {
    "serve": "maskwatch.site.serve",
    "aggregate": "maskwatch.site.aggregate",
    "report": "maskwatch.site.report",
    "doctor": "maskwatch.doctor",
    "install-desktop": "maskwatch.desktop",
}
"""Subcommands that live in their own module. Each module has ``build_parser(parser_class, prog)``
(an argparse parser built with the one-line-error ``parser_class``; it must accept ``--debug``)
and ``run(args, stop_signals) -> int`` (``stop_signals``: the installed SIGINT/SIGTERM handler,
see :class:`_StopSignals`; a command that wants the default handlers back calls
``stop_signals.restore()``). ``MaskwatchError`` from ``run`` is one error line and exit 2."""


def _site_command(name: str, stop_signals: _StopSignals):
    module = importlib.import_module(SITE_COMMANDS[name])
    return module.build_parser(_Parser, f"{PROG} {name}"), functools.partial(module.run, stop_signals=stop_signals)


def _command(name: str, **kwargs):
    """The command function ``name`` of :mod:`maskwatch.commands`, called with the parsed args and
    the config they make (:func:`build_config`)."""

    def run(args):
        config = build_config(args)  # first: a bad flag or TOML is one line before anything heavy loads
        from maskwatch import commands  # lazy: numpy, OpenCV and the model runtimes load to run, not for --help

        return commands.COMMANDS[name](args, config, **kwargs)

    return run


def _main(argv: list[str] | None, stop_signals: _StopSignals) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    site_command = bool(argv) and argv[0] in SITE_COMMANDS
    if site_command:
        parser, command = _site_command(argv[0], stop_signals)
        argv = argv[1:]
    elif argv and argv[0] in ("detect", "bench"):
        parser, command = (_detect_parser if argv[0] == "detect" else _bench_parser)(), argv[0]
        argv = argv[1:]
    else:
        parser, command = _main_parser(), None
    args = parser.parse_args(argv)
    if site_command:
        pass  # the command handles signals itself (stop_signals is installed, or restored by it)
    elif command is None and args.headless:
        command = _command("headless", stop_signals=stop_signals)
    else:
        if command is None and args.save_video is not None:  # before the app starts
            parser.error("--save-video is for --headless runs; in the desktop app use Record (Ctrl+R)")
        command = _command(command or "gui")
        stop_signals.restore()  # detect, bench and the app handle signals their own way
        if stop_signals.received is not None:  # asked to stop while starting: nothing done yet
            return 128 + stop_signals.received
    debug = bool(args.debug or os.environ.get("MASKWATCH_DEBUG", "") not in ("", "0"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format=f"{PROG}: %(levelname)s: %(name)s: %(message)s")
    with _native_stderr_hidden(enabled=not debug):
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        streams = [h.setStream(sys.stderr) for h in handlers]  # log lines go to the real stderr
        try:
            return command(args)
        except MaskwatchError as e:
            print(error_line(e), file=sys.stderr, flush=True)
            return getattr(e, "exit_code", 2) or 2
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # e.g. `maskwatch detect --json photos/ | head`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush does not complain
            os.close(devnull)
            return 0
        except Exception as e:  # unexpected: one line, the traceback only when debugging
            if debug:
                traceback.print_exc(file=sys.stderr)
            print(error_line(f"unexpected {type(e).__name__}: {e}" + ("" if debug else " (run with --debug for the traceback)")),
                  file=sys.stderr, flush=True)
            return 1
        finally:
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


if __name__ == "__main__":
    sys.exit(main())
