"""Where results go: every consumer of the monitor's stream is a :class:`~maskwatch.sinks.base.Sink`.

One module per sink: ``csv_log`` (interval rows), ``events`` (JSONL event log), ``snapshots``
(annotated JPEGs of flagged people), ``video`` (annotated video), ``alerts`` (the alert policy and
its sink), ``console`` (what ``--headless`` prints), ``collect`` (uncertain face crops for the
review loop). :func:`sinks_from_config` opens what a config
names. File writers append and flush each record as it is written, so a crash, SIGKILL or power
cut loses at most the record being written, and an existing log is never clobbered.

The names below are imported from their modules on first use, so importing one light module (the
CLI imports ``maskwatch.sinks.console`` before anything heavy) does not load OpenCV.
"""

from __future__ import annotations

import importlib

_EXPORTS: dict[str, str] = {
    "Alert": "alerts", "AlertPolicy": "alerts", "AlertSink": "alerts", "alert_record": "alerts",
    "BaseSink": "base", "CallbackSink": "base", "Sink": "base",
    "COLLECT_COLUMNS": "collect", "CollectSink": "collect",
    "ConsoleSink": "console", "format_summary": "console", "format_totals": "console",
    "DatabaseSink": "database",
    "CSV_COLUMNS": "csv_log", "IntervalCsvLog": "csv_log",
    "EventJsonl": "events", "event_record": "events",
    "check_output_paths": "from_config", "check_sinks_config": "from_config", "sinks_from_config": "from_config",
    "SnapshotSaver": "snapshots",
    "iso_time": "timestamps", "timespec_for": "timestamps",
    "VideoSink": "video",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'maskwatch.sinks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"maskwatch.sinks.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
