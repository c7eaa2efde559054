"""``SidePanel``: stream status and speed, people in view, totals, compliance chart, alert log.

Everything here is filled from what the worker delivers (``FrameResult``, interval summaries,
alerts); it computes nothing about people itself.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from maskwatch import LABELS
from maskwatch.frames import SourceState
from maskwatch.gui.alerts import AlertLog
from maskwatch.gui.theme import LABEL_TEXT, STATE_COLORS  # noqa: F401 - STATE_COLORS re-exported
from maskwatch.overlay import DISPLAY_NAMES, UNDECIDED, color_rgb, label_names
from maskwatch.records import state_text
from maskwatch.results import FrameResult, IntervalSummary, Stats, Totals

STAGE_ORDER = ("decode", "detect", "classify", "track")


def _rgb(c) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


class Card(QFrame):
    """A titled box of the side panel."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("card")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(12, 10, 12, 10)
        self.layout_.setSpacing(6)
        head = QLabel(title.upper())
        head.setObjectName("cardTitle")
        self.layout_.addWidget(head)


class SidePanel(QWidget):
    def __init__(self, alert_threshold: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sidePanel")
        self.source_is_live = True
        """A camera (the pill says "live") or a file / image folder ("playing"): set per run."""
        self.setMinimumWidth(330)
        self.setMaximumWidth(420)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(8)

        # status -----------------------------------------------------------------------------
        status = Card("Stream")
        row = QGridLayout()
        row.setHorizontalSpacing(10)
        self.state_label = QLabel()
        self.state_label.setObjectName("statePill")
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.fps_label = QLabel("— fps")
        self.fps_label.setObjectName("bigValue")
        self.stage_label = QLabel("")
        self.stage_label.setObjectName("muted")
        self.stage_label.setWordWrap(True)
        self.drop_label = QLabel("")
        self.drop_label.setObjectName("muted")
        row.addWidget(self.state_label, 0, 0)
        row.addWidget(self.fps_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        status.layout_.addLayout(row)
        status.layout_.addWidget(self.stage_label)
        status.layout_.addWidget(self.drop_label)
        outer.addWidget(status)

        # in view ------------------------------------------------------------------------------
        now = Card("In view now")
        self.in_view_label = QLabel("nobody")
        self.in_view_label.setObjectName("inView")
        self.in_view_label.setWordWrap(True)
        self.in_view_label.setTextFormat(Qt.TextFormat.RichText)
        now.layout_.addWidget(self.in_view_label)
        outer.addWidget(now)

        # totals -------------------------------------------------------------------------------
        totals = Card("Since start")
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        self.total_labels: dict[str, QLabel] = {}
        for col, name in enumerate(LABELS):
            value = QLabel("0")
            value.setObjectName("count")
            value.setAlignment(Qt.AlignmentFlag.AlignCenter)
            value.setStyleSheet(f"color: {LABEL_TEXT[name]};")  # lighter than the overlay's: text on a card
            caption = QLabel({"with_mask": "with mask", "without_mask": "without", "mask_worn_incorrectly": "incorrect"}[name])
            caption.setObjectName("muted")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(value, 0, col)
            grid.addWidget(caption, 1, col)
            self.total_labels[name] = value
        totals.layout_.addLayout(grid)
        self.compliance_label = QLabel("compliance —")
        self.compliance_label.setObjectName("compliance")
        self.people_label = QLabel("0 people seen")
        self.people_label.setObjectName("muted")
        line = QGridLayout()
        line.addWidget(self.compliance_label, 0, 0)
        line.addWidget(self.people_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        totals.layout_.addLayout(line)
        # per person-time: for how long people were masked (compliance above counts people once)
        self.masked_time_label = QLabel("masked time —")
        self.masked_time_label.setObjectName("muted")
        self.masked_time_label.setToolTip("Share of the time people were in view with a mask on "
                                          "(compliance counts each person once, with their first label)")
        totals.layout_.addWidget(self.masked_time_label)
        outer.addWidget(totals)

        # chart --------------------------------------------------------------------------------
        chart = Card("Compliance per interval")
        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(background=(30, 33, 39))
        self.plot.setMinimumHeight(130)
        self.plot.setMaximumHeight(170)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setYRange(-5, 112, padding=0)
        self.plot.getAxis("left").setTicks([[(0, "0"), (50, "50"), (100, "100%")]])
        self.plot.getAxis("bottom").setStyle(showValues=False)
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).setTextPen(pg.mkPen(170, 176, 186))
            self.plot.getAxis(ax).setPen(pg.mkPen(80, 86, 96))
        self.threshold_line = pg.InfiniteLine(pos=alert_threshold * 100, angle=0,
                                              pen=pg.mkPen(color_rgb("without_mask"), width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.threshold_line)
        self.curve = self.plot.plot([], [], pen=pg.mkPen(color_rgb("with_mask"), width=2),
                                    symbol="o", symbolSize=7, symbolBrush=color_rgb("with_mask"), symbolPen=None)
        self.chart_hint = pg.TextItem("no interval closed yet", color=(140, 146, 156), anchor=(0.5, 0.5))
        self.plot.addItem(self.chart_hint)
        self.chart_hint.setPos(0.5, 50)
        self.plot.setXRange(0, 1)
        chart.layout_.addWidget(self.plot)
        outer.addWidget(chart)
        self.intervals: list[IntervalSummary] = []

        # alerts -------------------------------------------------------------------------------
        alerts = Card("Alerts")
        self.alert_log = AlertLog()
        self.alert_log.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.alert_log.setMinimumHeight(90)
        alerts.layout_.addWidget(self.alert_log, 1)
        outer.addWidget(alerts, 1)

        self.state = "idle"
        self.set_state("idle")

    # --- updates -------------------------------------------------------------------------------------
    def set_state(self, state: str, reconnect_in: float | None = None) -> None:
        """``state``: a SourceState value, or "idle", "stopped", "error"."""
        self.state = state
        text = {"idle": "idle", "connecting": "connecting…", "live": "● live" if self.source_is_live else "▶ playing",
                "ended": "ended", "stopped": "stopped", "error": "error"}.get(state, state)
        if state == SourceState.RECONNECTING.value:
            text = f"reconnecting in {reconnect_in:.0f} s" if reconnect_in else "reconnecting…"
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"background: {_rgb(STATE_COLORS.get(state, (110, 116, 128)))};")

    def show_stats(self, stats: Stats, ui_skipped: int) -> None:
        self.set_state(state_text(stats.source_state), stats.reconnect_in)
        self.fps_label.setText(f"{stats.fps:.1f} fps")
        stages = [(k, stats.stage_ms[k]) for k in STAGE_ORDER if k in stats.stage_ms]
        stages += [(k, v) for k, v in stats.stage_ms.items() if k not in STAGE_ORDER and k != "total"]
        line1 = " · ".join(f"{k} {v:.0f}" for k, v in stages) + (" ms" if stages else "")
        extra = []
        if "total" in stats.stage_ms:
            extra.append(f"total {stats.stage_ms['total']:.0f} ms per frame")
        if stats.latency_ms:
            extra.append(f"latency {stats.latency_ms:.0f} ms")
        self.stage_label.setText(line1 + ("\n" + " · ".join(extra) if extra else ""))
        self.drop_label.setText(f"dropped frames: {stats.dropped_frames} source, {ui_skipped} display")

    def show_result(self, result: FrameResult, ui_skipped: int) -> None:
        self.show_stats(result.stats, ui_skipped)
        faces = result.faces
        if len(faces):
            items = []
            for i, name in enumerate(label_names(faces)):
                tid = int(faces.track_id[i])
                who = f"#{tid}" if tid >= 0 else "face"
                c = LABEL_TEXT[name] if name in LABELS else _rgb(color_rgb(UNDECIDED))
                items.append(f"<span style='color:{c}'>■</span> {who} {DISPLAY_NAMES.get(name, name) if name != UNDECIDED else 'deciding…'}")
            self.in_view_label.setText(f"<b>{len(faces)}</b> {'person' if len(faces) == 1 else 'people'}: " + ", ".join(items))
        else:
            self.in_view_label.setText("nobody")
        self.show_totals(result.totals)

    def show_totals(self, totals: Totals) -> None:
        for name, label in self.total_labels.items():
            label.setText(str(totals.by_label.get(name, 0)))
        rate = totals.compliance_rate
        self.compliance_label.setText("compliance —" if rate is None else f"compliance {rate:.0%}")
        self.people_label.setText(f"{totals.people_seen} {'person' if totals.people_seen == 1 else 'people'} seen")
        self.masked_time_label.setText(masked_time_text(totals))

    def add_interval(self, summary: IntervalSummary) -> None:
        self.intervals.append(summary)
        xs = np.arange(1, len(self.intervals) + 1, dtype=float)
        ys = np.array([np.nan if s.compliance_rate is None else 100 * s.compliance_rate for s in self.intervals])
        if np.isfinite(ys).any():
            self.curve.setData(xs, ys, connect="finite")  # no line across intervals where nobody was decided
        else:
            self.curve.setData([], [])
        n = len(self.intervals)
        self.plot.getAxis("bottom").setStyle(showValues=True)
        self.plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(1, n + 1, max(1, n // 6))]])
        self.plot.setXRange(max(0.5, n - 29.5), n + 0.5)
        if np.isfinite(ys).any():
            self.chart_hint.setVisible(False)
        else:
            self.chart_hint.setText(f"{n} interval{'s' if n != 1 else ''}, nobody decided yet")
            self.chart_hint.setPos((max(0.5, n - 29.5) + n + 0.5) / 2, 50)

    def set_threshold(self, threshold: float) -> None:
        self.threshold_line.setPos(threshold * 100)

    def reset(self) -> None:
        self.intervals = []
        self.curve.setData([], [])
        self.chart_hint.setText("no interval closed yet")
        self.chart_hint.setVisible(True)
        self.chart_hint.setPos(0.5, 50)
        self.plot.setXRange(0, 1)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.in_view_label.setText("nobody")
        self.show_totals(Totals())
        self.fps_label.setText("— fps")
        self.stage_label.setText("")
        self.drop_label.setText("")


def masked_time_text(totals: Totals) -> str:
    """The masked share of person-time and the label changes, for the totals card.

    >>> masked_time_text(Totals(person_s={"with_mask": 30.0, "without_mask": 10.0, "mask_worn_incorrectly": 0.0},
    ...                         label_changes=1))
    'masked time 75% (40 s in view) · 1 label change'
    >>> masked_time_text(Totals())
    'masked time —'
    """
    share = totals.masked_time_share
    if share is None:
        return "masked time —"
    seconds = sum(totals.person_s.values())
    shown = f"{seconds:.0f} s" if seconds < 120 else elapsed_text(seconds)
    n = totals.label_changes
    changes = f" · {n} label change{'s' if n != 1 else ''}" if n else ""
    return f"masked time {share:.0%} ({shown} in view){changes}"


def elapsed_text(seconds: float) -> str:
    """``h:mm:ss``.

    >>> elapsed_text(3725)
    '1:02:05'
    """
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

