"""The desktop app's source picker: a password pasted raw into a URL, or in its query string, is
moved into the password field at once and never stored (pytest-qt, offscreen)."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from maskwatch.sources.spec import parse  # noqa: E402


def assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text, f"password {password!r} leaked in {text!r}"


def test_gui_picker_moves_raw_and_query_passwords_out_of_sight(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from maskwatch.gui.settings import GuiSettings
    from maskwatch.gui.source_picker import SourcePicker

    picker = SourcePicker([])
    qtbot.addWidget(picker)
    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    for pasted, shown, password in [
        ("rtsp://admin:p@ss w#rd/?@10.0.0.7/live", "rtsp://admin@10.0.0.7/live", "p@ss w#rd/?"),
        ("http://cam:8080/snap.cgi?user=admin&pwd=s3cr et#1", "http://cam:8080/snap.cgi?user=admin&pwd=", "s3cr et#1"),
    ]:
        picker.password.clear()
        picker.combo.lineEdit().clear()
        QApplication.clipboard().setText(pasted)
        picker.combo.lineEdit().paste()  # pasted, as users do (typed key by key, the first "@" ends it)
        assert picker.combo.currentText() == shown and picker.password.text() == password
        assert picker.current_spec() == shown and password not in picker.display_name()
        assert parse(picker.spec_for_run()).password == password  # what the monitor gets
        settings.add_recent(picker.spec_for_run())
        assert_hidden(password, *settings.all_values().values())


def test_gui_picker_keeps_a_password_and_a_query_secret_apart(qtbot):
    """Regression: ``rtsp://a:pw@cam/x?token=abc`` ran as ``...?token=pw``: the userinfo password
    went into the token's slot and ``abc`` was lost."""
    from PyQt6.QtWidgets import QApplication

    from maskwatch.gui.source_picker import SourcePicker

    picker = SourcePicker([])
    qtbot.addWidget(picker)
    pasted = "rtsp://a:p@ss w0rd@cam/x?token=abc123&ch=1"
    picker.combo.lineEdit().clear()
    QApplication.clipboard().setText(pasted)
    picker.combo.lineEdit().paste()
    assert (picker.current_spec(), picker.password.text()) == ("rtsp://a@cam/x?token=&ch=1", "p@ss w0rd")
    assert_hidden("abc123", picker.combo.currentText(), picker.display_name())
    assert parse(picker.spec_for_run()).url == parse(pasted).url  # both secrets, each in its slot
    picker.password.setText("n3w")  # the field edits the userinfo password, the token stays
    assert parse(picker.spec_for_run()).url == "rtsp://a:n3w@cam/x?token=abc123&ch=1"
    # another camera never gets this one's token
    picker.set_spec("rtsp://b@cam2/x?token=")
    assert parse(picker.spec_for_run()).url == "rtsp://b:n3w@cam2/x?token="
    picker.set_spec("rtsp://a@cam/x?token=&ch=1")  # back to the first one: its token is still there
    assert parse(picker.spec_for_run()).url == "rtsp://a:n3w@cam/x?token=abc123&ch=1"
