"""The entry point of a camera's worker process: light, so a broken install is one error line.

The supervisor starts :func:`worker_process` in a fresh interpreter (``multiprocessing`` "spawn").
It imports the worker (:mod:`maskwatch.site.worker`: the monitor, OpenCV, the model runtimes,
SQLAlchemy) only once it runs, inside a ``try``: if that import fails (a package missing or
broken), the supervisor gets one :class:`~maskwatch.site.messages.WorkerError` line and the exit
status :data:`~maskwatch.site.messages.EXIT_PERMANENT` (not restarted: the install must be
fixed), instead of a traceback from the child and a restart every few seconds. It also keeps
``maskwatch serve --help`` and serve's argument errors free of those imports.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection

from maskwatch.site.messages import EXIT_PERMANENT, STATS_EVERY_S, WorkerError


def worker_process(camera: str, config, db_url: str, conn: Connection, debug: bool,
                   stats_every_s: float = STATS_EVERY_S) -> None:
    """The target of the supervisor's ``Process``: :func:`maskwatch.site.worker.worker_main`."""
    try:
        # lazy: the worker's runtime (OpenCV, numpy, model runtimes, SQLAlchemy) may be broken: say so
        from maskwatch.site.worker import worker_main
    except Exception as e:  # noqa: BLE001 - any import failure is the install, reported in one line
        try:
            conn.send(WorkerError(camera, f"cannot start the camera's worker: {type(e).__name__}: {e}", permanent=True))
            conn.close()
        finally:
            os._exit(EXIT_PERMANENT)
    worker_main(camera, config, db_url, conn, debug, stats_every_s)
