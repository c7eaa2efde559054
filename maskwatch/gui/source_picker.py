"""``SourcePicker``: choose what to watch — a webcam, a camera URL (+ password), a file, a recent one.

One editable combo box holds the demo clip, the webcams found on this machine and the recent
sources; typing into it gives a URL, path or webcam index. A separate password field appears for
camera URLs. A password typed or pasted into the URL is moved into that field at once, so it is
never displayed, stored or added to the recent list; :meth:`SourcePicker.spec_for_run` is the only
place it is put back into the URL. A URL with more than one secret (``rtsp://a:pw@cam/x?token=abc``)
shows the userinfo password in the field; the other secrets are kept out of sight, for that URL
only, and go back to their own slots.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from maskwatch.gui.source_spec import find_webcams
from maskwatch.sources.spec import Credentials, is_network_url, split_credentials, with_credentials, with_password
from maskwatch.paths import demo_clip

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm *.m4v *.mpg *.mpeg *.ts);;Images (*.jpg *.jpeg *.png *.bmp *.webp);;All files (*)"


class SourcePicker(QWidget):
    """Emits ``activated()`` when the user presses Enter in the source or password field."""

    activated = pyqtSignal()

    def __init__(self, recent: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        label = QLabel("Source")
        label.setObjectName("sourceLabel")
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.setMinimumContentsLength(22)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.lineEdit().setPlaceholderText("webcam index, rtsp://user@camera/stream, video file or image folder")
        self.combo.setToolTip("A webcam, a camera URL (rtsp://, http://), a video file or a folder of images")
        self.combo.lineEdit().textEdited.connect(self._on_text_edited)
        self.combo.lineEdit().returnPressed.connect(self.activated)
        self.combo.currentIndexChanged.connect(lambda _i: self._update_password_visibility())

        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("camera password")
        self.password.setToolTip("Sent only to the camera; never shown, logged or saved")
        self.password.setFixedWidth(150)
        self.password.returnPressed.connect(self.activated)
        # the secrets split off the last URL that had any: (that URL without them, the secrets);
        # used only while the source is that same URL, so no secret reaches another camera
        self._hidden: tuple[str, Credentials] | None = None

        self.open_button = QToolButton()
        self.open_button.setText("Open…")
        self.open_button.setToolTip("Open a video file (Ctrl+O) or a folder of images")
        self.open_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self.open_button)
        self.open_file_action = QAction("Video or image file…", self)
        self.open_folder_action = QAction("Folder of images…", self)
        menu.addAction(self.open_file_action)
        menu.addAction(self.open_folder_action)
        self.open_button.setMenu(menu)
        self.open_button.clicked.connect(self.open_file)
        self.open_file_action.triggered.connect(self.open_file)
        self.open_folder_action.triggered.connect(self.open_folder)

        layout.addWidget(label)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.password)
        layout.addWidget(self.open_button)
        self.set_recent(recent or [])

    # --- items ---------------------------------------------------------------------------------
    def set_recent(self, recent: list[str]) -> None:
        """Rebuild the list: demo clip, webcams, then recent sources (already password-free)."""
        current = self.current_spec()
        self.combo.blockSignals(True)
        self.combo.clear()
        demo = demo_clip()
        if demo.is_file():
            self.combo.addItem("Demo clip (corridor CCTV)", str(demo))
        for cam in find_webcams():
            self.combo.addItem(cam.name, cam.spec)
        builtin = {str(self.combo.itemData(k)) for k in range(self.combo.count())}
        builtin |= {str(Path(b).resolve()) for b in builtin if b and not is_network_url(b) and Path(b).exists()}
        # the demo clip and the webcams have their own entries: not listed again as recent sources
        recent = [r for r in recent if r and r not in builtin
                  and (is_network_url(r) or not Path(r).exists() or str(Path(r).resolve()) not in builtin)]
        if recent:
            self.combo.insertSeparator(self.combo.count())
            for spec in recent:
                self.combo.addItem(spec, spec)
        self.combo.blockSignals(False)
        if current:
            self.set_spec(current)
        self._update_password_visibility()

    def set_spec(self, spec: str) -> None:
        """Show ``spec`` (its password, if any, goes to the password field)."""
        spec = self._split_off(spec)
        i = self.combo.findData(spec)
        if i < 0 and spec and not is_network_url(spec):
            resolved = str(Path(spec).expanduser().resolve())
            i = next((k for k in range(self.combo.count()) if self.combo.itemData(k)
                      and str(self.combo.itemData(k)) == resolved), -1)
        if i >= 0:
            self.combo.setCurrentIndex(i)
        else:
            self.combo.setEditText(spec)
        self._update_password_visibility()

    def current_spec(self) -> str:
        """The chosen source without password (what may be displayed and stored)."""
        text = self.combo.currentText().strip()
        i = self.combo.currentIndex()
        if i >= 0 and self.combo.itemText(i) == text and self.combo.itemData(i):
            return str(self.combo.itemData(i))
        return split_credentials(text)[0]

    def spec_for_run(self) -> str:
        """The spec handed to the monitor: the URL with the password field's text and any other
        secret split off this URL put back. Never store it."""
        spec, typed = self.current_spec(), self.password.text()
        if self._hidden is not None and self._hidden[0] == spec:
            return with_credentials(spec, self._hidden[1].with_primary(typed))
        return with_password(spec, typed)

    def _split_off(self, text: str) -> str:
        """``text`` without its secrets: they go to the password field (the primary one) and out of
        sight (the others); ``text`` as it is when it has none."""
        stripped, creds = split_credentials(text)
        if creds:
            self._hidden = (stripped, creds)
            self.password.setText(creds.primary)
        return stripped

    def display_name(self) -> str:
        text = self.combo.currentText().strip()
        spec = self.current_spec()
        if spec and Path(spec).exists() and not is_network_url(spec):
            return Path(spec).name or spec
        return text if text and text != spec else spec

    # --- slots -----------------------------------------------------------------------------------
    def _on_text_edited(self, text: str) -> None:
        """A password typed or pasted into the URL goes to the password field at once; the cursor
        stays in the URL (someone typing ``rtsp://user:secret@`` goes on with the host there, and a
        pasted URL is complete). Focus never jumps to the password field while the user types."""
        edit = self.combo.lineEdit()
        stripped = self._split_off(text)
        if stripped != text.strip():
            cursor = edit.cursorPosition()
            removed = len(text) - len(stripped)
            edit.setText(stripped)
            edit.setCursorPosition(max(0, min(len(stripped), cursor - removed)))
        self._update_password_visibility()

    def _update_password_visibility(self) -> None:
        self.password.setVisible(is_network_url(self.current_spec()))

    def open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or image", str(Path.home()), VIDEO_FILTER)
        if path:
            self.set_spec(path)
            self.activated.emit()

    def open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images", str(Path.home()))
        if path:
            self.set_spec(path)
            self.activated.emit()
