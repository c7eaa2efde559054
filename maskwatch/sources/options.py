"""``SourceConfig``: how sources are read (the ``[sources]`` table); owned by the sources stage,
re-exported by :mod:`maskwatch.config`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SourceConfig:
    realtime: bool = False  # files: pace to the file's fps
    # the times below are at least 0.1 s (Config.validate says why)
    open_timeout_s: float = 10.0  # network: give up one open attempt after this
    read_timeout_s: float = 5.0  # network: a read that blocks longer is a failure
    stall_timeout_s: float = 5.0  # network: no new frame for this long -> reconnect
    backoff_initial_s: float = 0.5  # the first wait before a reconnect, doubled up to backoff_max_s
    backoff_max_s: float = 30.0
    max_reconnects: int | None = None  # None = forever
