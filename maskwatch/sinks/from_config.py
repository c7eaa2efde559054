"""The sinks a :class:`~maskwatch.config.Config` asks for, checked before anything is written.

This is the one registry of configured outputs: a new output (a database, MQTT, ...) is its own
module in ``maskwatch/sinks/`` plus one line in :func:`sinks_from_config`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from maskwatch.classification import model_info
from maskwatch.errors import MaskwatchError
from maskwatch.records import timespec_for
from maskwatch.sinks.alerts import AlertListener, AlertPolicy, AlertSink, jsonl_listener
from maskwatch.sinks.base import Sink
from maskwatch.sinks.collect import CollectSink, check_collect_folder
from maskwatch.sinks.csv_log import IntervalCsvLog, check_log_file
from maskwatch.sinks.events import EventJsonl, check_events_file
from maskwatch.sinks.retention import RetentionSink
from maskwatch.sinks.snapshots import SnapshotSaver
from maskwatch.sinks.video import VideoSink, check_video_path
from maskwatch.sources.spec import parse


def _resolved(path) -> Path:
    return Path(path).expanduser().resolve()


def _same_file(a, b) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:  # one of them is not there (yet)
        return False


def check_output_paths(*, log=None, events=None, snapshots=None, save_video=None, source=None) -> None:
    """One-line ``MaskwatchError`` when two outputs would write the same file, an output is the
    ``source`` file being watched, or a file would be written inside the snapshots folder (JSON
    lines in the CSV log, a video among the snapshots).

    >>> check_output_paths(log="counts.csv", events="events.jsonl")
    >>> check_output_paths(log="out/x", events="out/../out/x")
    Traceback (most recent call last):
    maskwatch.errors.MaskwatchError: log and events are the same file (out/x): give each output its own file
    """
    files = [(name, path) for name, path in (("log", log), ("events", events), ("save_video", save_video))
             if path is not None]
    for i, (name_a, a) in enumerate(files):
        for name_b, b in files[i + 1:]:
            if _same_file(a, b):
                raise MaskwatchError(f"{name_a} and {name_b} are the same file ({a}): give each output its own file")
    if source is not None:
        for name, path in files:
            if _same_file(path, source):
                raise MaskwatchError(f"{name} {path} is the source being watched: give the output its own file")
    if snapshots is not None:
        folder = _resolved(snapshots)
        for name, path in files:
            target = _resolved(path)
            if target == folder or folder in target.parents:
                raise MaskwatchError(f"{name} {path} is inside the snapshots folder {snapshots}: "
                                     "keep logs and videos out of it")


def source_file(source) -> Path | None:
    """The file a source text names (a video or an image), ``None`` for cameras, URLs, folders."""
    try:
        spec = parse(source)
    except MaskwatchError:
        return None
    return spec.path if spec.kind == "path" and spec.path is not None and spec.path.is_file() else None


def check_writable(path, what: str, *, folder: bool = False) -> None:
    """One-line ``MaskwatchError`` unless ``path`` (a file, or with ``folder`` a directory) can be
    written: itself if it exists, else the nearest existing folder above it (created folders go
    there). Checked before any output is opened, so one that cannot be written leaves no other
    file behind."""
    path = Path(path).expanduser()
    try:
        if os.path.lexists(path):
            if folder != path.is_dir():
                raise MaskwatchError(f"cannot write {what} {path}: " + ("not a folder" if folder else "it is a directory"))
            if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
                raise MaskwatchError(f"cannot write {what} {path}: permission denied")
            return
        above = path.absolute().parent
        while not os.path.lexists(above) and above != above.parent:
            above = above.parent
    except OSError as e:  # a name too long, a loop of links
        raise MaskwatchError(f"cannot write {what} {path}: {e.strerror or e}") from None
    if not above.is_dir():
        raise MaskwatchError(f"cannot write {what} {path}: {above} is not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise MaskwatchError(f"cannot write {what} {path}: folder {above} is not writable")


def check_sinks_config(config) -> None:
    """The checks :func:`sinks_from_config` makes before opening anything, on their own: run them
    before loading models so a bad output path fails in a fraction of a second. Outputs must not
    collide (with each other or the source file), each must be writable, an existing log or
    event log must be one (never rows appended to another file), a video must be new."""
    save_video = getattr(config, "save_video", None)
    check_output_paths(log=config.log, events=config.events, snapshots=config.snapshots, save_video=save_video,
                       source=source_file(config.spec) if getattr(config, "source", None) is not None else None)
    if config.log is not None:
        check_writable(config.log, "log")
        check_log_file(config.log)
    if config.events is not None:
        check_writable(config.events, "events")
        check_events_file(config.events)
    if config.snapshots is not None:
        check_writable(config.snapshots, "snapshots", folder=True)
    if save_video is not None:
        check_video_path(save_video)
    collect = getattr(getattr(config, "collect", None), "folder", None)
    if collect is not None:
        if config.snapshots is not None and _same_file(collect, config.snapshots):
            raise MaskwatchError(f"collect and snapshots are the same folder ({collect}): give each its own folder")
        check_writable(collect, "collect", folder=True)
        check_collect_folder(collect)


class _NewPaths:
    """The outputs (and the folders above them) that do not exist yet: :meth:`remove` takes away
    what a failed start created, so an error that says nothing was written is true."""

    def __init__(self, paths) -> None:
        found: set[Path] = set()
        for path in paths:
            if path is None:
                continue
            path = Path(path).expanduser().absolute()
            while not os.path.lexists(path) and path != path.parent:
                found.add(path)
                path = path.parent
        self.paths = sorted(found, key=lambda p: len(p.parts), reverse=True)  # files before their folders

    def remove(self) -> None:
        for path in self.paths:
            try:
                if path.is_symlink() or path.is_file():
                    path.unlink()
                elif path.is_dir():
                    path.rmdir()  # only if empty
            except OSError:
                pass


def _model_info(path):
    """The configured model's identity (the monitor tells sinks when it changes), ``None`` if unreadable."""
    try:
        return model_info(path)
    except (MaskwatchError, OSError):
        return None


def sinks_from_config(
    config,
    *,
    console=None,
    alert_listeners: Iterable[AlertListener] = (),
    alert_thumbnail=None,
) -> list[Sink]:
    """Open the outputs ``config`` names (CSV log, JSONL events, snapshots, video) and the alert
    sink, in the order the monitor feeds them. ``console`` (a
    :class:`~maskwatch.sinks.console.ConsoleSink`) is added last and also prints alerts;
    ``alert_listeners`` get every alert too (the desktop app's mailbox).

    Every path is checked before the first file is opened (:func:`check_sinks_config`), so a bad
    combination writes nothing; if one still fails to open, those already opened (and ``console``)
    are closed again and the files and folders this call created are removed.
    """
    check_sinks_config(config)
    save_video = getattr(config, "save_video", None)
    collect = getattr(getattr(config, "collect", None), "folder", None)
    new_paths = _NewPaths([config.log, config.events, config.snapshots, collect])
    sinks: list[Sink] = []
    try:
        if config.log is not None:
            sinks.append(IntervalCsvLog(config.log, timespec=timespec_for(config.interval_s)))
        events = None
        if config.events is not None:
            events = EventJsonl(config.events)
            sinks.append(events)
        if config.snapshots is not None:
            sinks.append(SnapshotSaver(config.snapshots, blur=config.blur_faces))
        if save_video is not None:
            sinks.append(VideoSink(save_video, blur=config.blur_faces))
        if config.retain_days is not None:  # old snapshots and recordings go (maskwatch.sinks.retention)
            sinks.append(RetentionSink(config))
        if collect is not None:  # the review loop's uncertain crops (maskwatch.sinks.collect)
            sinks.append(CollectSink(config.collect, source=config.spec, vote_window=config.tracker.vote_window,
                                     model=_model_info(config.model), retain_days=config.retain_days))
        listeners: list[AlertListener] = []
        if events is not None:
            listeners.append(jsonl_listener(events))
        if console is not None:
            listeners.append(console.print_alert)
        listeners.extend(alert_listeners)
        if listeners:
            sinks.append(AlertSink(AlertPolicy(config.alert_compliance_below), *listeners, thumbnail=alert_thumbnail))
        if console is not None:
            sinks.append(console)
    except BaseException:
        for sink in sinks if console is None or console in sinks else [*sinks, console]:
            sink.close()
        new_paths.remove()
        raise
    return sinks
