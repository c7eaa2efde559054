"""The sinks a :class:`~maskwatch.config.Config` asks for, checked before anything is written.

This is the one registry of configured outputs: a new output (a database, MQTT, ...) is its own
module in ``maskwatch/sinks/`` plus one line in :func:`sinks_from_config`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.sinks.alerts import AlertListener, AlertPolicy, AlertSink, jsonl_listener
from maskwatch.sinks.base import Sink
from maskwatch.sinks.csv_log import IntervalCsvLog
from maskwatch.sinks.events import EventJsonl
from maskwatch.sinks.snapshots import SnapshotSaver
from maskwatch.sinks.timestamps import timespec_for
from maskwatch.sinks.video import VideoSink, check_video_path


def _resolved(path) -> Path:
    return Path(path).expanduser().resolve()


def check_output_paths(*, log=None, events=None, snapshots=None, save_video=None) -> None:
    """One-line ``MaskwatchError`` when two outputs would write the same file, or a file would be
    written inside the snapshots folder (JSON lines in the CSV log, a video among the snapshots).

    >>> check_output_paths(log="counts.csv", events="events.jsonl")
    >>> check_output_paths(log="out/x", events="out/../out/x")
    Traceback (most recent call last):
    maskwatch.errors.MaskwatchError: log and events are the same file (out/x): give each output its own file
    """
    files = [(name, path) for name, path in (("log", log), ("events", events), ("save_video", save_video))
             if path is not None]
    for i, (name_a, a) in enumerate(files):
        for name_b, b in files[i + 1:]:
            same = _resolved(a) == _resolved(b)
            if not same and os.path.exists(a) and os.path.exists(b):
                same = os.path.samefile(a, b)  # hard links
            if same:
                raise MaskwatchError(f"{name_a} and {name_b} are the same file ({a}): give each output its own file")
    if snapshots is not None:
        folder = _resolved(snapshots)
        for name, path in files:
            target = _resolved(path)
            if target == folder or folder in target.parents:
                raise MaskwatchError(f"{name} {path} is inside the snapshots folder {snapshots}: "
                                     "keep logs and videos out of it")


def check_sinks_config(config) -> None:
    """The checks :func:`sinks_from_config` makes before opening anything, on their own: run them
    before loading models so a bad output path fails in a fraction of a second."""
    save_video = getattr(config, "save_video", None)
    check_output_paths(log=config.log, events=config.events, snapshots=config.snapshots, save_video=save_video)
    if save_video is not None:
        check_video_path(save_video)


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

    Every path is checked before the first file is opened, so a bad combination writes nothing;
    if one fails to open, those already opened (and ``console``) are closed again.
    """
    check_sinks_config(config)
    save_video = getattr(config, "save_video", None)
    sinks: list[Sink] = []
    try:
        if config.log is not None:
            sinks.append(IntervalCsvLog(config.log, timespec=timespec_for(config.interval_s)))
        events = None
        if config.events is not None:
            events = EventJsonl(config.events)
            sinks.append(events)
        if config.snapshots is not None:
            sinks.append(SnapshotSaver(config.snapshots))
        if save_video is not None:
            sinks.append(VideoSink(save_video))
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
        raise
    return sinks
