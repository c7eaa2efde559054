"""Moved to :mod:`maskwatch.history` (the history store, written by the runtime's database sink)
and :mod:`maskwatch.records` (the payload shapes); kept so that imports written against earlier
versions still work."""

from maskwatch.history import (  # noqa: F401 - re-exported
    History,
    DatabaseUnavailable,
    RowRejected,
    EVENT_FIELDS,
    EVENT_TYPES,
    INTERVAL_FIELDS,
    TIME_FIELDS,
    ADDED_COLUMNS,
    KINDS,
    BUSY_TIMEOUT_MS,
    database_url,
    shown,
    event_payload,
    interval_payload,
    new_id,
    payload_time,
    metadata,
    intervals_table,
    events_table,
    _checked,
)
