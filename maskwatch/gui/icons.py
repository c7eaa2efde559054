"""The app's icons: ``assets/icons/<name>.svg`` as a ``QIcon`` (an empty one when the file is missing)."""

from __future__ import annotations

from PyQt6.QtGui import QIcon

from maskwatch.paths import assets_dir


def icon(name: str) -> QIcon:
    path = assets_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
