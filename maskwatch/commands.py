"""What the ``maskwatch`` commands do once their arguments are parsed (:mod:`maskwatch.cli` parses).

:mod:`maskwatch.cli` imports this module only to run a command, so ``--help``, the argument checks
and the config checks load no numpy, OpenCV or model runtime. Each function takes the parsed
``args`` and the :class:`~maskwatch.config.Config` they make and returns the exit status; a
``MaskwatchError`` is the CLI's one error line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from maskwatch import LABELS, bench
from maskwatch.classification import MaskClassifier
from maskwatch.cli_text import say_error, say_warning
from maskwatch.config import Config
from maskwatch.detection import FaceDetector
from maskwatch.errors import MaskwatchError
from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow
from maskwatch.monitor import Monitor
from maskwatch.sinks import ConsoleSink, check_sinks_config, sinks_from_config, timespec_for
from maskwatch.sinks.console import format_totals
from maskwatch.sources import display_path, load_image
from maskwatch.sources.spec import IMAGE_SUFFIXES


def run_headless(args, config: Config, *, stop_signals) -> int:
    """``maskwatch --headless``: the monitor with the console and the configured sinks; the totals
    on stdout at the end. ``stop_signals``: the CLI's installed SIGINT/SIGTERM handler."""
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


def run_gui(args, config: Config) -> int:
    """``maskwatch``: the desktop app (a source named on the command line starts at once)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise MaskwatchError("no display found (DISPLAY is not set); use 'maskwatch --headless' to run without a window")
    import_mediapipe_without_tensorflow()
    try:
        from maskwatch.gui import run_app  # lazy: PyQt6 may be missing or broken; --headless must still run
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


def run_detect(args, config: Config) -> int:
    """Faces and labels of each image. An image that cannot be read (or a path that is not
    there, a folder without images) is a warning line and the run goes on with the next; if any
    failed, the last line is one error and the exit status is 1. Images are read as bytes
    (``maskwatch.sources.load_image``): a file name that is not valid UTF-8 never reaches OpenCV
    as text (which crashes it), and is printed with ``\\xNN`` escapes (also in ``--json``)."""
    import_mediapipe_without_tensorflow()
    classifier = MaskClassifier(config.model)
    detector = FaceDetector.from_config(config.detector)
    failures = read = 0
    try:
        for path, exists in iter_images(args.paths):
            shown = display_path(path)
            if not exists:
                say_warning(f"no images in folder {shown}" if path.is_dir() else f"no such file or folder: {shown}")
                failures += 1
                continue
            image = load_image(path)
            if image is None:
                say_warning(f"cannot read image: {shown}")
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
        say_error(what if read else f"{what} (no image was read)")
        return 1
    return 0


def run_bench(args, config: Config) -> int:
    """``maskwatch bench``: per-stage timings (``--streams N``: N processes at once)."""
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


COMMANDS = {"headless": run_headless, "gui": run_gui, "detect": run_detect, "bench": run_bench}
"""The CLI's name of each command -> its function."""
