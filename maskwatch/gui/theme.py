"""One dark theme for every widget and dialog of the app: named colours, the stylesheet, a Qt palette.

:data:`COLORS` names every colour the app draws text or surfaces with; :data:`STYLE` is the
stylesheet written with those names (``{text}``, ``{card}`` ...); :func:`apply_theme` puts the
stylesheet and a matching :class:`QPalette` on the whole application (Fusion style), so dialogs
made by Qt itself (file dialogs, message boxes, their header views and lists) are dark too, not
only the widgets the stylesheet names.

Readable by rule: every text colour on every surface it is drawn on has a contrast of at least
4.5:1 (WCAG 2.x AA for normal text). :data:`TEXT_ON` lists those pairs: a stylesheet rule's own
``color``/``background`` pair, and for rules that set only one of them, the surfaces its text sits
on. ``tests/gui/test_gui_all_day.py`` reads :data:`STYLE` back, checks that every ``color`` and
``background`` in it belongs to a pair here, and that each pair passes.

>>> round(contrast("#ffffff", "#000000"), 1), contrast("#777777", "#777777")
(21.0, 1.0)
>>> min(contrast(fg, bg) for fg, bg, _where in text_pairs()) >= 4.5
True
"""

from __future__ import annotations

from maskwatch.frames import SourceState
from maskwatch.overlay import color_rgb
from maskwatch.paths import assets_dir

COLORS = {
    # surfaces
    "window": "#16181d",      # main window, side panel, tab pages
    "sunken": "#1a1d22",      # alert log, lists, review grid, table views
    "card": "#1e2127",        # cards, toolbar, status bar, dialogs, tab bar
    "input": "#272b33",       # line edits, combo boxes, spin boxes, menus, tooltips
    "raised": "#2c3038",      # buttons, selected tab, hover, header sections
    "raised_hover": "#363b45",
    "border": "#3a404b",
    "line": "#2a2e36",
    "accent": "#1b6641",      # Start, default button, selection, checked boxes
    "accent_hover": "#1f7a4d",
    "danger": "#8a2f2f",      # Stop, recording
    # text
    "text": "#dfe3ea",        # all text unless said otherwise
    "muted": "#a3abb9",       # captions, hints, card titles, status bar
    "on_accent": "#ffffff",
    "rec": "#ff7373",         # the REC label in the status bar
    "disabled": "#9aa2b1",    # disabled buttons and items
}

LABEL_TEXT = {"with_mask": "#26d468", "without_mask": "#ff6b6b", "mask_worn_incorrectly": "#ffb02e"}
"""Label colours for text on the dark surfaces (the counts, the in-view list). The overlay's
colours (:func:`maskwatch.overlay.color_rgb`) are drawn on video; ``without_mask``'s red is too dark
for text on ``card`` (3.6:1), so text uses these lighter shades of the same hues."""

STYLE_TEMPLATE = """
QMainWindow, #central, QTabWidget::pane, QStackedWidget {{ background: {window}; }}
QWidget {{ color: {text}; font-size: 10pt; }}
QToolBar {{ background: {card}; border: none; border-bottom: 1px solid {line}; padding: 6px; spacing: 8px; }}
QToolBar QToolButton {{ padding: 5px 10px; border-radius: 5px; }}
QToolBar QToolButton:hover {{ background: {raised}; }}
QToolButton#startButton {{ background: {accent}; color: {on_accent}; font-weight: 600; min-width: 64px; }}
QToolButton#startButton:hover {{ background: {accent_hover}; }}
QToolButton#startButton[running="true"] {{ background: {danger}; }}
QToolButton#recordButton[recording="true"] {{ background: {danger}; color: {on_accent}; font-weight: 600; }}
QToolButton:disabled, QPushButton:disabled {{ color: {disabled}; }}
#recordLabel {{ color: {rec}; font-weight: 700; }}
QComboBox, QLineEdit, QSpinBox, QDoubleSpinBox, QTextEdit, QPlainTextEdit {{ background: {input}; border: 1px solid {border}; border-radius: 5px; padding: 4px 6px; }}
QComboBox QAbstractItemView {{ background: {input}; selection-background-color: {accent}; selection-color: {on_accent}; }}
#sourceLabel {{ color: {muted}; }}
#sidePanel {{ background: {window}; }}
#card {{ background: {card}; border: 1px solid {line}; border-radius: 8px; }}
#cardTitle {{ color: {muted}; font-size: 8pt; font-weight: 700; letter-spacing: 1px; }}
#statePill {{ color: {on_accent}; font-weight: 700; border-radius: 9px; padding: 3px 12px; }}
#bigValue {{ font-size: 15pt; font-weight: 700; }}
#count {{ font-size: 22pt; font-weight: 700; }}
#compliance {{ font-size: 12pt; font-weight: 700; }}
#muted {{ color: {muted}; font-size: 9pt; }}
#inView {{ font-size: 10pt; }}
#alertLog {{ background: {sunken}; border: none; }}
#alertLog::item {{ padding: 3px; border-bottom: 1px solid {line}; }}
QTabBar {{ background: {card}; }}
QTabBar::tab {{ background: {card}; color: {muted}; padding: 6px 18px; border: none; border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ background: {raised}; color: {text}; border-bottom: 2px solid {accent_hover}; }}
QTabBar::tab:hover {{ background: {raised_hover}; color: {text}; }}
QListWidget, QListView, QTreeView, QTableView {{ background: {sunken}; color: {text}; border: 1px solid {line}; alternate-background-color: {card}; }}
QListWidget::item:selected, QListView::item:selected, QTreeView::item:selected, QTableView::item:selected {{ background: {accent}; color: {on_accent}; }}
QHeaderView::section {{ background: {raised}; color: {text}; border: none; border-right: 1px solid {border}; padding: 4px 6px; }}
QStatusBar {{ background: {card}; color: {muted}; }}
QStatusBar QLabel {{ color: {muted}; }}
QToolButton::menu-button {{ border: none; background: transparent; width: 14px; }}
QToolButton::menu-arrow {{ image: url(@ICONS@/down.svg); width: 9px; height: 9px; }}
QComboBox::drop-down {{ border: none; width: 18px; }}
QScrollBar:vertical {{ background: {sunken}; width: 8px; margin: 0; }}
QScrollBar::handle:vertical {{ background: {border}; border-radius: 4px; min-height: 24px; }}
QScrollBar:horizontal {{ background: {sunken}; height: 8px; margin: 0; }}
QScrollBar::handle:horizontal {{ background: {border}; border-radius: 4px; min-width: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QSpinBox, QDoubleSpinBox {{ padding-right: 18px; }}
QSplitter::handle {{ background: {window}; }}
QSpinBox::up-button, QDoubleSpinBox::up-button, QSpinBox::down-button, QDoubleSpinBox::down-button {{
    background: {raised}; border: none; width: 16px; }}
QSpinBox::up-button, QDoubleSpinBox::up-button {{ border-top-right-radius: 5px; }}
QSpinBox::down-button, QDoubleSpinBox::down-button {{ border-bottom-right-radius: 5px; }}
QSpinBox::up-arrow, QDoubleSpinBox::up-arrow {{ image: url(@ICONS@/up.svg); width: 9px; height: 9px; }}
QSpinBox::down-arrow, QDoubleSpinBox::down-arrow, QComboBox::down-arrow {{ image: url(@ICONS@/down.svg); width: 9px; height: 9px; }}
QPushButton {{ background: {raised}; border: 1px solid {border}; border-radius: 5px; padding: 5px 16px; }}
QPushButton:hover {{ background: {raised_hover}; }}
QPushButton:default {{ background: {accent}; border-color: {accent_hover}; color: {on_accent}; }}
QDialog QToolButton {{ background: {raised}; border: 1px solid {border}; border-radius: 5px; padding: 3px 8px; }}
QCheckBox::indicator {{ width: 14px; height: 14px; border: 1px solid {border}; border-radius: 3px; background: {input}; }}
QCheckBox::indicator:checked {{ background: {accent}; border-color: {accent_hover}; image: url(@ICONS@/check.svg); }}
QMenu {{ background: {input}; border: 1px solid {border}; }}
QMenu::item:selected {{ background: {accent}; color: {on_accent}; }}
QToolTip {{ background: {input}; color: {text}; border: 1px solid {border}; }}
QDialog, QMessageBox, QFileDialog {{ background: {card}; }}
QProgressBar {{ background: {input}; color: {text}; border: 1px solid {border}; border-radius: 5px; text-align: center; }}
QProgressBar::chunk {{ background: {accent}; border-radius: 4px; }}
QGroupBox {{ border: 1px solid {line}; border-radius: 6px; margin-top: 10px; padding-top: 6px; }}
QGroupBox::title {{ color: {muted}; subcontrol-origin: margin; left: 8px; }}
#reviewGrid {{ background: {sunken}; color: {text}; border: none; }}
"""

STYLE = STYLE_TEMPLATE.format(**COLORS)
"""The stylesheet (``@ICONS@`` still to be replaced by the icon folder: :func:`stylesheet`)."""

TEXT_ON: dict[str, tuple[str, ...]] = {
    # text colour -> the surfaces it is drawn on (rules that set only a colour, or only a background)
    "text": ("window", "sunken", "card", "input", "raised", "raised_hover"),
    "muted": ("window", "sunken", "card", "input", "raised", "raised_hover"),
    "disabled": ("window", "card", "raised"),
    "on_accent": ("accent", "accent_hover", "danger"),
    "rec": ("card",),
}
"""Where each text colour appears. ``text`` on ``accent`` (a selected combo entry) uses ``on_accent``."""

SURFACES_WITHOUT_TEXT = ("border", "line")
"""Colours used only for lines, scroll bar handles and frames (no text is drawn on them)."""


def contrast(fg: str, bg: str) -> float:
    """WCAG 2.x contrast ratio of two ``#rrggbb`` colours (1 .. 21)."""
    def luminance(color: str) -> float:
        color = color.lstrip("#")
        channels = [int(color[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_pairs() -> list[tuple[str, str, str]]:
    """Every (text colour, surface colour, where) pair the app draws: :data:`TEXT_ON`, the label
    colours on the cards and lists, and white on the state pill's and alert banner's colours."""
    pairs = [(COLORS[fg], COLORS[bg], f"{fg} on {bg}") for fg, bgs in TEXT_ON.items() for bg in bgs]
    pairs += [(c, COLORS[bg], f"{name} text on {bg}") for name, c in LABEL_TEXT.items()
              for bg in ("window", "sunken", "card")]
    pairs += [(COLORS["on_accent"], hex_color(rgb), f"state pill {state}") for state, rgb in STATE_COLORS.items()]
    pairs += [(banner_text_color(banner_color(kind)), hex_color(banner_color(kind)), f"alert banner {kind}")
              for kind in (*SEVERITY_COLORS, "error", "info")]
    return pairs


def hex_color(rgb) -> str:
    """``(r, g, b)`` as ``#rrggbb``.

    >>> hex_color((255, 0, 16))
    '#ff0010'
    """
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])


# The alert log's, the alert banner's and the state pill's colours (:mod:`maskwatch.gui.alerts`,
# :mod:`maskwatch.gui.side_panel` re-export them): here, so :func:`text_pairs` checks them without
# importing those widget modules (which import this one).

SEVERITY_COLORS = {"without_mask": color_rgb("without_mask"), "mask_worn_incorrectly": color_rgb("mask_worn_incorrectly"),
                   "mask_off": color_rgb("without_mask"),
                   "compliance": color_rgb("without_mask"), "interval_compliance": color_rgb("without_mask")}
"""The alert log's colour of each alert kind (its thumbnails' frames)."""

BANNER_COLORS = {"error": (150, 40, 40), "without_mask": (190, 35, 35), "mask_off": (190, 35, 35),
                 "compliance": (190, 35, 35), "interval_compliance": (190, 35, 35), "info": (50, 92, 150)}
"""Banner backgrounds: the severity colour, darkened where white text on it would be under 4.5:1."""

STATE_COLORS = {
    "idle": (110, 116, 128),
    SourceState.CONNECTING.value: (40, 100, 190),
    SourceState.LIVE.value: (30, 125, 66),
    SourceState.RECONNECTING.value: (160, 92, 10),
    SourceState.ENDED.value: (110, 116, 128),
    "stopped": (110, 116, 128),
    "error": (210, 60, 60),
}
"""The state pill's background per source state (white text on it)."""


def banner_color(kind: str) -> tuple[int, int, int]:
    """The alert banner's background for an alert of ``kind`` (or ``"error"``)."""
    return BANNER_COLORS.get(kind) or SEVERITY_COLORS.get(kind, (90, 90, 90))


def banner_text_color(rgb) -> str:
    """White or near-black, whichever reads better on ``rgb`` (WCAG contrast).

    >>> banner_text_color((255, 170, 0)), banner_text_color((150, 40, 40))
    ('#111111', '#ffffff')
    """
    bg = hex_color(rgb)
    return max(("#ffffff", "#111111"), key=lambda fg: contrast(fg, bg))


def stylesheet() -> str:
    """:data:`STYLE` with the icon folder filled in."""
    return STYLE.replace("@ICONS@", (assets_dir() / "icons").as_posix())


def palette():
    """A dark :class:`QPalette` in :data:`COLORS`, for what the stylesheet does not reach."""
    from PyQt6.QtGui import QColor, QPalette

    pal = QPalette()
    roles = QPalette.ColorRole
    for role, name in ((roles.Window, "card"), (roles.WindowText, "text"), (roles.Base, "sunken"),
                       (roles.AlternateBase, "card"), (roles.Text, "text"), (roles.Button, "raised"),
                       (roles.ButtonText, "text"), (roles.ToolTipBase, "input"), (roles.ToolTipText, "text"),
                       (roles.Highlight, "accent"), (roles.HighlightedText, "on_accent"),
                       (roles.PlaceholderText, "muted"), (roles.BrightText, "on_accent"), (roles.Link, "with_mask")):
        pal.setColor(role, QColor(LABEL_TEXT["with_mask"] if name == "with_mask" else COLORS[name]))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(COLORS["disabled"]))
    return pal


def apply_theme(app=None) -> None:
    """Fusion style, :func:`palette` and :func:`stylesheet` on the whole application (every window,
    dialog and Qt-made file dialog); does nothing without a ``QApplication``."""
    from PyQt6.QtWidgets import QApplication

    app = app or QApplication.instance()
    if app is None:
        return
    if app.property("maskwatchTheme"):
        return
    app.setStyle("Fusion")
    app.setPalette(palette())
    app.setStyleSheet(stylesheet())
    app.setProperty("maskwatchTheme", True)
