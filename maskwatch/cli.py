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
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from maskwatch import LABELS, __version__
from maskwatch.errors import MaskwatchError
from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow
from maskwatch.sinks.console import format_totals

PROG = "maskwatch"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


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
    from maskwatch.detection.registry import modes  # the registry alone: no model runtime for --help

    return modes()


def _detector_help() -> str:
    from maskwatch.detection import registry

    return "face detector mode: " + "; ".join(registry.get(mode).describe() for mode in registry.modes())


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
    from maskwatch.config import Config

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


def _redact(text: str) -> str:
    """``text`` with every credential-looking part hidden (``maskwatch.sources.spec.redact``)."""
    from maskwatch.sources.spec import redact

    return redact(text)


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


def _error(message: str) -> None:
    line = " ".join(_redact(str(message)).split()) or "unknown error"
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {' '.join(_redact(str(message)).split())}", file=sys.stderr, flush=True)


# -- commands -------------------------------------------------------------------------------------


def _run_headless(args, stop_signals: "_StopSignals") -> int:
    from maskwatch.monitor import Monitor
    from maskwatch.sinks import ConsoleSink, check_sinks_config, sinks_from_config, timespec_for

    config = build_config(args)
    check_sinks_config(config)  # a bad output path fails now, before seconds of model loading
    # Until the first frame, trouble with the source ends in ONE error line (unreachable camera,
    # corrupt file), so the source's own warnings are held back; afterwards they are shown.
    console = ConsoleSink(sys.stdout, sys.stderr, quiet=args.quiet, timespec=timespec_for(config.interval_s),
                          hold_source_warnings=not args.debug)
    # the files are opened once the models are loaded and the source is open
    monitor = Monitor(config, sinks=lambda: sinks_from_config(config, console=console))
    stop_signals.attach(monitor)  # a signal that came during start-up stops the run before it starts
    try:
        if not monitor.stopped:
            import_mediapipe_without_tensorflow()
        totals = monitor.run()
    finally:
        console.close()  # also when the run never opened its sinks
    print(format_totals(totals), file=sys.stdout, flush=True)
    return 0


def _run_gui(args) -> int:
    config = build_config(args)
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise MaskwatchError("no display found (DISPLAY is not set); use 'maskwatch --headless' to run without a window")
    import_mediapipe_without_tensorflow()
    try:
        from maskwatch.gui import run_app
    except ImportError as e:
        raise MaskwatchError(f"the desktop app cannot start ({e}); use 'maskwatch --headless'") from None
    # a source named on the command line is what the user wants watched: start at once
    return int(run_app(config, autostart=args.source is not None) or 0)


def iter_images(paths: list[str]):
    """(path, exists) for each image file named or found (recursively, sorted) in named folders.

    A folder without any image is yielded itself with ``exists`` False (``detect`` reports it,
    instead of printing nothing and succeeding). Names that are not valid UTF-8 are fine here.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                yield p, False
            yield from ((f, True) for f in found)
        else:
            yield p, p.is_file()


def detect_record(image_path: str, faces) -> dict:
    """The ``maskwatch detect --json`` object of one image (see the module docstring)."""
    out = []
    for i in range(len(faces)):
        probs = faces.probs[i]
        label = int(probs.argmax())
        out.append({
            "box": [round(float(v), 1) for v in faces.xyxy[i]],
            "label": LABELS[label],
            "score": round(float(probs[label]), 4),
            "probs": {k: round(float(probs[j]), 4) for j, k in enumerate(LABELS)},
        })
    return {"image": image_path, "faces": out}


def _run_detect(args) -> int:
    """Faces and labels of each image. An image that cannot be read (or a path that is not
    there, a folder without images) is a warning line and the run goes on with the next; if any
    failed, the last line is one error and the exit status is 1. Images are read as bytes
    (``maskwatch.sources.load_image``): a file name that is not valid UTF-8 never reaches OpenCV
    as text (which crashes it), and is printed with ``\\xNN`` escapes (also in ``--json``)."""
    from maskwatch.classification import MaskClassifier
    from maskwatch.detection import FaceDetector
    from maskwatch.sources import display_path, load_image

    config = build_config(args)
    import_mediapipe_without_tensorflow()
    classifier = MaskClassifier(config.model)
    detector = FaceDetector.from_config(config.detector)
    failures = read = 0
    try:
        for path, exists in iter_images(args.paths):
            shown = display_path(path)
            if not exists:
                _warn(f"no images in folder {shown}" if path.is_dir() else f"no such file or folder: {shown}")
                failures += 1
                continue
            image = load_image(path)
            if image is None:
                _warn(f"cannot read image: {shown}")
                failures += 1
                continue
            read += 1
            faces = detector.detect(image)
            if len(faces):
                faces.probs = classifier.classify_faces(image, faces.xyxy)
            record = detect_record(shown, faces)
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                h, w = image.shape[:2]
                print(f"{shown}  ({w}x{h}, {len(faces)} face{'s' if len(faces) != 1 else ''})", flush=True)
                for f in record["faces"]:
                    x1, y1, x2, y2 = f["box"]
                    print(f"  [{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}]  {f['label']:<22} {f['score']:.2f}", flush=True)
    finally:
        detector.close()
    if failures:
        what = f"{failures} image{'s' if failures != 1 else ''} could not be read"
        _error(what if read else f"{what} (no image was read)")
        return 1
    return 0


def _run_bench(args) -> int:
    from maskwatch import bench

    config = build_config(args)
    import_mediapipe_without_tensorflow()
    if args.streams:
        report = bench.run_streams(config, args.streams, frames=args.frames, warmup=args.warmup)
        print(bench.format_streams(report), flush=True)
    else:
        report = bench.run(config, frames=args.frames, warmup=args.warmup)
        print(bench.format_report(report), flush=True)
    if args.json:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as e:
            raise MaskwatchError(f"cannot write {args.json}: {e.strerror or e}") from None
    return 0


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


def _main(argv: list[str] | None, stop_signals: _StopSignals) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    site_command = bool(argv) and argv[0] in SITE_COMMANDS
    if site_command:
        parser, command = _site_command(argv[0], stop_signals)
        argv = argv[1:]
    elif argv and argv[0] == "detect":
        parser, command = _detect_parser(), _run_detect
        argv = argv[1:]
    elif argv and argv[0] == "bench":
        parser, command = _bench_parser(), _run_bench
        argv = argv[1:]
    else:
        parser, command = _main_parser(), None
    args = parser.parse_args(argv)
    if site_command:
        pass  # the command handles signals itself (stop_signals is installed, or restored by it)
    elif command is None and args.headless:
        command = functools.partial(_run_headless, stop_signals=stop_signals)
    else:
        if command is None and args.save_video is not None:  # before the app starts
            parser.error("--save-video is for --headless runs; in the desktop app use Record (Ctrl+R)")
        command = command or _run_gui
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
            _error(e)
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
            _error(f"unexpected {type(e).__name__}: {e}" + ("" if debug else " (run with --debug for the traceback)"))
            return 1
        finally:
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


if __name__ == "__main__":
    sys.exit(main())
