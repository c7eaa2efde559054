"""Render the app icon ``assets/icons/maskwatch.svg`` to the PNG sizes of the freedesktop hicolor
theme: ``assets/icons/hicolor/<N>x<N>/apps/maskwatch.png`` (what ``maskwatch install-desktop`` copies
to ``~/.local/share/icons``). Uses Qt's SVG renderer (PyQt6, a dependency of the app) off screen.

    python scripts/make_app_icons.py            # rewrites the PNGs after the SVG changed
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import Qt  # noqa: E402
from PyQt6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PyQt6.QtSvg import QSvgRenderer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SVG = REPO / "assets" / "icons" / "maskwatch.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(svg: Path, size: int, out: Path) -> None:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_app_icons: cannot read {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"make_app_icons: cannot write {out}")


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - QImage/QPainter need one
    for size in SIZES:
        out = REPO / "assets" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "maskwatch.png"
        render(SVG, size, out)
        print(out.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
