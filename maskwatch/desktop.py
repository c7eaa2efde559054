"""``maskwatch install-desktop``: the app in this user's menu (Linux, freedesktop.org desktops).

::

    maskwatch install-desktop               # ~/.local/share/applications + icons (hicolor theme)
    maskwatch install-desktop --uninstall   # removes exactly what it installed
    maskwatch install-desktop --data-home DIR   # another XDG data folder (default $XDG_DATA_HOME or ~/.local/share)

Copies ``assets/maskwatch.desktop`` with ``Exec``/``TryExec`` set to the absolute path of this
``maskwatch`` command (a venv's or pipx's ``bin/`` is often not on a desktop session's ``PATH``),
the SVG icon to ``icons/hicolor/scalable/apps`` and the PNG sizes to ``icons/hicolor/NxN/apps``,
then refreshes the desktop and icon caches where those tools are installed. Windows and macOS need
their own launcher (a Start-menu shortcut, an ``.app`` bundle); this command says so and stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.paths import assets_dir

DESKTOP_FILE = "maskwatch.desktop"
ICON_NAME = "maskwatch"


def data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share"


def maskwatch_command() -> str:
    """The absolute path of the ``maskwatch`` console script of this Python, else the one on PATH."""
    scripts = Path(sys.executable).parent
    for name in ("maskwatch", "maskwatch.exe"):
        if (scripts / name).is_file():
            return str(scripts / name)
    found = shutil.which("maskwatch")
    if found:
        return str(Path(found).resolve())
    raise MaskwatchError("cannot find the maskwatch command next to this Python or on PATH; reinstall maskwatch")


def _exec_quoted(path: str) -> str:
    """``path`` as a desktop-entry Exec program: quoted when it has a space or a reserved character."""
    if any(c in path for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$") + '"'
    return path


def desktop_entry(command: str) -> str:
    """The shipped desktop entry with ``Exec`` and ``TryExec`` pointing at ``command``."""
    source = assets_dir() / DESKTOP_FILE
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise MaskwatchError(f"cannot read {source}: {e.strerror or e}") from None
    out = []
    for line in lines:
        if line.startswith("Exec="):
            line = f"Exec={_exec_quoted(command)}"
        elif line.startswith("TryExec="):
            line = f"TryExec={command}"
        out.append(line)
    return "\n".join(out) + "\n"


def planned_files(home: Path) -> dict[Path, Path | None]:
    """target -> source (None: the desktop entry, written from :func:`desktop_entry`)."""
    icons = assets_dir() / "icons"
    files: dict[Path, Path | None] = {home / "applications" / DESKTOP_FILE: None}
    files[home / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg"] = icons / f"{ICON_NAME}.svg"
    for png in sorted((icons / "hicolor").glob(f"*/apps/{ICON_NAME}.png")):
        files[home / "icons" / "hicolor" / png.parent.parent.name / "apps" / png.name] = png
    return files


def _refresh_caches(home: Path) -> None:
    """Ask the desktop to notice (best effort: these tools are optional)."""
    for tool, arg in (("update-desktop-database", home / "applications"),
                      ("gtk-update-icon-cache", home / "icons" / "hicolor")):
        exe = shutil.which(tool)
        if exe and arg.is_dir():
            extra = ["-f", "-t", "-q"] if tool == "gtk-update-icon-cache" else ["-q"]
            subprocess.run([exe, *extra, str(arg)], capture_output=True, timeout=60, check=False)


def install(home: Path, out=None) -> list[Path]:
    out = out or sys.stdout
    command = maskwatch_command()
    written = []
    try:
        for target, source in planned_files(home).items():
            target.parent.mkdir(parents=True, exist_ok=True)
            if source is None:
                target.write_text(desktop_entry(command), encoding="utf-8")
            else:
                if not source.is_file():
                    raise MaskwatchError(f"icon not found: {source} (reinstall maskwatch)")
                shutil.copyfile(source, target)
            written.append(target)
    except OSError as e:
        raise MaskwatchError(f"cannot write {e.filename or home}: {e.strerror or e}") from None
    _refresh_caches(home)
    for path in written:
        print(f"installed {path}", file=out)
    print(f"maskwatch is in the applications menu (Exec={command}); "
          "'maskwatch install-desktop --uninstall' removes it", file=out, flush=True)
    return written


def uninstall(home: Path, out=None) -> list[Path]:
    out = out or sys.stdout
    removed = []
    for target in planned_files(home):
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise MaskwatchError(f"cannot remove {target}: {e.strerror or e}") from None
        removed.append(target)
        print(f"removed {target}", file=out)
    _refresh_caches(home)
    if not removed:
        print(f"nothing to remove under {home}", file=out)
    return removed


def build_parser(parser_class, prog: str):
    p = parser_class(prog=prog, description="Put maskwatch in this user's applications menu (Linux: a desktop "
                     "entry and icons under ~/.local/share), or take it out again.")
    p.add_argument("--uninstall", action="store_true", help="remove the desktop entry and icons installed before")
    p.add_argument("--data-home", type=Path, metavar="DIR",
                   help="XDG data folder to install into (default: $XDG_DATA_HOME or ~/.local/share)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args, stop_signals=None, out=None) -> int:
    if stop_signals is not None:
        stop_signals.restore()
    if sys.platform == "win32" or sys.platform == "darwin":
        raise MaskwatchError("install-desktop is for Linux desktops; on Windows make a Start-menu shortcut to "
                             "'maskwatch' (pythonw -m maskwatch.cli), on macOS an .app bundle or a Dock alias")
    home = (args.data_home or data_home()).expanduser()
    (uninstall if args.uninstall else install)(home, out)
    return 0
