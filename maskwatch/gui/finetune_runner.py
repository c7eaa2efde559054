"""The Review tab's background fine-tune: ``python -m train.cli finetune --progress-lines ...`` in a
:class:`QProcess`, its progress lines turned into signals.

A subprocess, not a thread: TensorFlow is imported there and never in the app (``train/__init__``),
a crash of it cannot take the window down, and Cancel ends it at once. Its ``@progress {json}`` lines
(``train.finetune.PROGRESS_PREFIX``) drive a progress bar; every other line (``warning: ...``, the
summary) is passed on; ``maskwatch-train: error: ...`` on stderr is the one-line reason when it fails.

The command is built from absolute paths, so it is the same from any working folder, and the one
shown to the user (:func:`printed_command`) is quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import site
import sys
from pathlib import Path

from PyQt6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

PROGRESS_PREFIX = "@progress "   # as train.finetune writes them (not imported: that needs numpy and train/)
RESULT_PREFIX = "@result "
TFLITE_NAME = "mask_classifier.tflite"
INSTALL_HINT = ("Fine-tuning needs the training extra (TensorFlow), which is not installed: "
                "pip install 'maskwatch[train]' (or 'maskwatch[train-gpu]' for an NVIDIA GPU)")

_find_spec = importlib.util.find_spec   # tests replace it to play a machine without TensorFlow


def train_missing() -> str | None:
    """``None`` when ``maskwatch-train finetune`` can run here, else the one line that says how to install it.

    Only looks the packages up (no import: TensorFlow takes seconds and stays out of the app)."""
    for name in ("tensorflow", "keras", "sklearn", "train.finetune"):
        try:
            found = _find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return INSTALL_HINT
    return None


def _import_root() -> str | None:
    """The folder ``train`` is imported from when it is not a site folder (a clone run without
    ``pip install``): the subprocess gets it in ``PYTHONPATH``. ``None`` for an installed package."""
    try:
        spec = _find_spec("train")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]).resolve().parent
    sites = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()] if p}
    return None if root in sites else str(root)


def finetune_arguments(data: str | Path, out: str | Path, model: str | Path | None = None,
                       extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``finetune --data ABS --out ABS [--model ABS] EXTRA...``: what follows ``maskwatch-train``.
    Without ``model`` the default (the shipped float model, found through ``maskwatch.paths``) is used."""
    args = ["finetune", "--data", str(Path(data).resolve()), "--out", str(Path(out).resolve())]
    if model is not None:
        args += ["--model", str(Path(model).resolve())]
    return args + [str(a) for a in extra]


def printed_command(data: str | Path, out: str | Path, model: str | Path | None = None,
                    extra: list[str] | tuple[str, ...] = ()) -> str:
    """The fine-tune command to show the user: right from any folder (absolute paths, each quoted).

    ``maskwatch-train`` when it is on ``PATH``; else this Python with ``-m train.cli`` (and the
    clone's folder in ``PYTHONPATH`` when ``train`` is not installed)."""
    tail = " ".join(shlex.quote(a) for a in finetune_arguments(data, out, model, extra))
    exe = shutil.which("maskwatch-train")
    if exe:
        return f"maskwatch-train {tail}"
    root = _import_root()
    prefix = f"PYTHONPATH={shlex.quote(root)} " if root else ""
    return f"{prefix}{shlex.quote(sys.executable)} -m train.cli {tail}"


class FinetuneRunner(QObject):
    """One background fine-tune at a time.

    Signals: ``progress(fraction, text)`` (0..1 of the whole run); ``line(text)`` for every other
    line it prints (warnings, the summary); ``finished(state, tflite, message)`` once, with state
    ``"done"`` (``tflite`` the new model, which exists), ``"failed"`` (``message`` the one-line
    reason) or ``"cancelled"`` (the half-written run folder is removed)."""

    progress = pyqtSignal(float, str)
    line = pyqtSignal(str)
    finished = pyqtSignal(str, str, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.out: Path | None = None
        self.result: dict = {}
        self.lines: list[str] = []
        self._stderr: list[str] = []
        self._buffers = {"out": "", "err": ""}
        self._cancelled = False
        self._created_out = False
        self._reported = False
        self._kill_timer = QTimer(self)   # after Cancel: SIGKILL if SIGTERM did not end it
        self._kill_timer.setSingleShot(True)
        self._kill_timer.setInterval(3000)
        self._kill_timer.timeout.connect(self._kill)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, data: str | Path, out: str | Path, model: str | Path | None = None,
              extra: list[str] | tuple[str, ...] = ()) -> None:
        """Start ``python -m train.cli finetune --progress-lines ...`` (results come as signals)."""
        if self.running:
            raise RuntimeError("a fine-tune is running already")
        self.out = Path(out).resolve()
        self._created_out = not self.out.exists()
        self.result, self.lines, self._stderr = {}, [], []
        self._buffers = {"out": "", "err": ""}
        self._cancelled = self._reported = False
        if self.process is not None:
            self.process.deleteLater()
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        root = _import_root()
        if root:
            env.insert("PYTHONPATH", os.pathsep.join(p for p in (root, env.value("PYTHONPATH", "")) if p))
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("TF_CPP_MIN_LOG_LEVEL", env.value("TF_CPP_MIN_LOG_LEVEL", "2"))
        process.setProcessEnvironment(env)
        # -P: the working folder is not put on sys.path (a train/ folder there must not be imported)
        process.setProgram(sys.executable)
        process.setArguments(["-P", "-m", "train.cli",
                              *finetune_arguments(data, out, model, [*extra, "--progress-lines"])])
        process.setWorkingDirectory(str(self.out.parent if self.out.parent.is_dir() else Path.home()))
        process.readyReadStandardOutput.connect(self._read_out)
        process.readyReadStandardError.connect(self._read_err)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        process.start()

    def cancel(self) -> None:
        """Stop the fine-tune (SIGTERM, then SIGKILL after 3 s); ``finished("cancelled", ...)`` follows."""
        if not self.running:
            return
        self._cancelled = True
        self.process.terminate()
        self._kill_timer.start()

    def _kill(self) -> None:
        if self.running:
            self.process.kill()

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Cancel and wait for the process to end (the window is closing)."""
        if self.running:
            self.cancel()
            if not self.process.waitForFinished(timeout_ms):
                self.process.kill()
                self.process.waitForFinished(1000)

    # -- the process's output ------------------------------------------------------------------------

    def _read_out(self) -> None:
        for text in self._take("out", bytes(self.process.readAllStandardOutput())):
            self._handle(text)

    def _read_err(self) -> None:
        for text in self._take("err", bytes(self.process.readAllStandardError())):
            self._stderr.append(text)
            del self._stderr[:-50]

    def _take(self, which: str, data: bytes, final: bool = False) -> list[str]:
        text = self._buffers[which] + data.decode("utf-8", "replace")
        *lines, rest = text.split("\n")
        if final and rest:
            lines, rest = [*lines, rest], ""
        self._buffers[which] = rest
        return [ln.rstrip("\r") for ln in lines if ln.strip()]

    def _handle(self, text: str) -> None:
        if text.startswith(PROGRESS_PREFIX):
            try:
                p = json.loads(text[len(PROGRESS_PREFIX):])
                fraction = float(p.get("fraction", 0.0))
            except (ValueError, TypeError, AttributeError):
                return
            label = " ".join(str(p.get(k) or "") for k in ("stage", "detail")).strip()
            self.progress.emit(min(1.0, max(0.0, fraction)), label)
        elif text.startswith(RESULT_PREFIX):
            try:
                result = json.loads(text[len(RESULT_PREFIX):])
            except ValueError:
                return
            self.result = result if isinstance(result, dict) else {}
        else:
            self.lines.append(text)
            self.line.emit(text)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._report("failed", "", f"cannot start {sys.executable}: {self.process.errorString()}")

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        for text in self._take("out", bytes(self.process.readAllStandardOutput()), final=True):
            self._handle(text)
        self._stderr += self._take("err", bytes(self.process.readAllStandardError()), final=True)
        tflite = self.out / TFLITE_NAME if self.out else None
        if self._cancelled:
            if self._created_out and self.out is not None:
                shutil.rmtree(self.out, ignore_errors=True)   # ours, half written: no model in it
            self._report("cancelled", "", "fine-tune cancelled; nothing was written")
        elif status == QProcess.ExitStatus.NormalExit and code == 0 and tflite is not None and tflite.is_file():
            self._report("done", str(tflite), self.result.get("summary", ""))
        else:
            self._report("failed", "", self._failure(code, status))

    def _failure(self, code: int, status: QProcess.ExitStatus) -> str:
        errors = [t for t in self._stderr if t.startswith("maskwatch-train: error:")]
        if errors:
            return errors[-1].removeprefix("maskwatch-train: error: ")
        if status == QProcess.ExitStatus.CrashExit:
            return "the fine-tune process crashed" + (f": {self._stderr[-1]}" if self._stderr else "")
        tail = self._stderr[-1] if self._stderr else "no model was written"
        return f"the fine-tune stopped (exit status {code}): {tail}"

    def _report(self, state: str, tflite: str, message: str) -> None:
        if not self._reported:
            self._reported = True
            self.finished.emit(state, tflite, message)
