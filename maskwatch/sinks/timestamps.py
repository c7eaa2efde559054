"""Moved to :mod:`maskwatch.records` (one time rule for every record); kept so that imports written
against earlier versions still work.

>>> timespec_for(0.5), iso_time(1e9 + 0.25, "milliseconds")[19:23]
('milliseconds', '.250')
"""

from maskwatch.records import iso_time, timespec_for  # noqa: F401 - re-exported
