"""Moved to :mod:`maskwatch.sinks.retention` (a sink belongs to the runtime layer); kept so that
imports written against earlier versions still work."""

from maskwatch.sinks.retention import (  # noqa: F401 - re-exported
    DAY_S,
    EVERY_S,
    GUI_NAMES,
    RetentionSink,
    purge,
    purge_folder,
    purge_gui_outputs,
    recording_names,
    snapshot_names,
)
