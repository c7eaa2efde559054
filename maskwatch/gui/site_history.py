"""The Site tab's history dialog: a camera's last day of interval rows and its last alerts, read
from the site's history database (:class:`HistoryDialog`)."""

from __future__ import annotations

import time
from datetime import datetime

from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.gui.site_state import ALERT_TEXT, SHORT_LABEL, CameraStatus, SiteState, duration_text, rate_text
from maskwatch.site.report import summarize


class HistoryDialog(QDialog):
    """A camera's last day of interval rows and its last alerts, read from the history database."""

    ROWS = 60

    def __init__(self, camera: str, db_url: str, shown_url: str, parent: QWidget | None = None, now: float | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"{camera}: recent history")
        self.resize(760, 460)
        layout = QVBoxLayout(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        columns = ("start", "end", "people", *(SHORT_LABEL[k] for k in LABELS), "compliance", "state")
        self.table = QTableWidget(0, len(columns))
        self.table.setHorizontalHeaderLabels(list(columns))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        self.alerts = QLabel("")
        self.alerts.setObjectName("muted")
        self.alerts.setWordWrap(True)
        layout.addWidget(self.alerts)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.error: str | None = None
        self.load(camera, db_url, shown_url, time.time() if now is None else now)

    def load(self, camera: str, db_url: str, shown_url: str, now: float) -> None:
        from maskwatch.history import History  # lazy: SQLAlchemy (~0.3 s) only once a history is opened

        try:
            history = History(db_url, create=False)  # a viewer never creates a database
            try:
                rows = history.intervals(since=now - 86400.0, camera=camera)
                events = history.events(since=now - 86400.0, camera=camera)
            finally:
                history.close()
        except MaskwatchError as e:
            self.error = str(e)
            self.summary.setText(f"cannot read the history: {e}")
            return
        if not rows:
            self.summary.setText(f"no interval rows of {camera} in the last 24 h in {shown_url}")
        else:
            total = summarize(rows)
            decided = sum(p.decided for p in total)
            masked = sum(p.by_label["with_mask"] for p in total)
            outage = sum(p.outage_s for p in total)
            self.summary.setText(
                f"{camera}, last 24 h ({len(rows)} intervals, {shown_url}): compliance "
                f"{rate_text(masked / decided if decided else None)} of {decided} decided people, "
                f"outage {duration_text(outage)}")
        shown_rows = rows[-self.ROWS:][::-1]
        self.table.setRowCount(len(shown_rows))
        for r, row in enumerate(shown_rows):
            cells = [datetime.fromtimestamp(row["start_ts"]).strftime("%H:%M:%S"),
                     datetime.fromtimestamp(row["end_ts"]).strftime("%H:%M:%S"), str(row.get("people_seen", 0)),
                     *(str(row.get(k, 0)) for k in LABELS), rate_text(row.get("compliance_rate")),
                     str(row.get("source_state", ""))]
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        probe = SiteState()
        lines = []
        for event in events[::-1]:
            status = CameraStatus(camera)
            probe.add_event(status, event)
            if status.last_alert is not None:
                a = status.last_alert
                lines.append(f"{datetime.fromtimestamp(a.ts).strftime('%H:%M:%S')} "
                             f"{'#%d ' % a.track_id if a.track_id is not None else ''}{ALERT_TEXT.get(a.kind, a.kind)}")
            if len(lines) >= 8:
                break
        self.alerts.setText("last alerts: " + ("; ".join(lines) if lines else "none in the last 24 h"))
