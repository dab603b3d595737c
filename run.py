"""The standalone portus_fab application.

- `python run.py` serves it with gunicorn and, on the embedded defaults, starts a Celery worker
  with the beat scheduler beside it (broker: an SQLite file in the data dir), so enrichment
  happens there too.
- `flask --app run ...` runs its CLI (FAB's `fab` commands and portus_fab's `portus` commands).
- `celery -A run:celery_app worker` runs a worker on its own (production, with Redis).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery
from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from gunicorn.app.base import BaseApplication

from portus_fab.settings import Settings

# Every file this application creates, whichever process creates it, is its user's only: the
# data dir holds the database (and SQLite's -wal and -shm files, which it creates again later),
# the broker, the beat schedule, the keys and the secrets. SQLite and Celery create most of them
# themselves, so a process umask is the one place that covers them all.
PRIVATE_UMASK = 0o077


class _RelationshipSearchColumns(logging.Filter):
    """FAB's own security REST API (its GroupApi) lists relationship paths such as `roles.name`
    among its search columns; FAB's filter converter supports none of them, so it warns about
    each on every start and every CLI command. Only that warning goes: one about a plain column
    would still be a real mistake of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == "Filter type not supported for column: %s"
            and isinstance(args, tuple)
            and "." in str(args[0])
        )


_QUIET_FAB_FILTERS = _RelationshipSearchColumns()


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from config.py, with `overrides` on top (tests use a temporary database)."""
    os.umask(PRIVATE_UMASK)  # before config.py, which creates the data dir and the secret
    logging.getLogger("flask_appbuilder.models.filters").addFilter(_QUIET_FAB_FILTERS)
    app = Flask(__name__)
    app.config.from_object("config")
    if overrides:
        app.config.update(overrides)
    db = SQLA()
    with app.app_context():
        db.init_app(app)
        AppBuilder().init_app(app, db.session)
    return app


def __getattr__(name: str) -> Celery:
    # `celery -A run:celery_app` looks the attribute up: build the app only then, not on import.
    if name == "celery_app":
        return create_app().extensions["celery"]
    raise AttributeError(name)


def worker_command(*extra: str) -> list[str]:
    """A Celery worker with the beat scheduler embedded, for this app."""
    celery = [sys.executable, "-m", "celery", "-A", "run:celery_app"]
    return [*celery, "worker", "--beat", "--pool", "solo", "--loglevel", "INFO", *extra]


def start_embedded_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(worker_command(), cwd=Path(__file__).resolve().parent)


def server_options(settings: Settings) -> dict[str, Any]:
    """gunicorn's settings for `python run.py`.

    One thread per worker is gunicorn's sync worker: on two cores it served 1,390 tokens/s where
    gthread (2 workers x 4 threads) served 580 (bench/results/token_bench_es256.md); the webhook
    gains nothing from threads either, as the registry sends one envelope at a time. Threads
    (gthread) keep requests that wait on a slow registry from holding a whole worker.

    The app is built once, here, before the workers fork (`preload_app`): workers building their
    own would each update FAB's permissions and portus_fab's tables in the same SQLite file at
    the same moment. See `release_connections` for what makes the fork safe.
    """
    host = f"[{settings.host}]" if ":" in settings.host else settings.host  # IPv6
    return {
        "bind": f"{host}:{settings.port}",
        "workers": settings.web_workers,
        "worker_class": "sync" if settings.web_threads == 1 else "gthread",
        "threads": settings.web_threads,
        "preload_app": True,
        "proc_name": "portus_fab",
        # Its default path is one per user: a second instance would take the first one's.
        "control_socket_disable": True,
    }


def release_connections(app: Flask) -> None:
    """Close the database connections building the app opened, before gunicorn forks: a worker
    must never use a connection (an SQLite handle, a PostgreSQL socket) it shares with another
    process, so each opens its own on its first request. This process serves nothing and opens
    none again. The other per-process state is fork-safe as it is: the event applier starts its
    thread on the first wake in each process, and Celery resets its connection pools after a
    fork."""
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()


class Server(BaseApplication):
    """gunicorn, run in this process on an app built before it starts."""

    def __init__(self, app: Flask, options: Mapping[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()  # reads the options through load_config

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self._app


def main() -> None:
    app = create_app()
    settings = app.extensions["portus_fab"].settings
    release_connections(app)
    # A plain `kill` before gunicorn takes the signals over must stop the worker too: turn
    # SIGTERM into a normal exit through `finally`. gunicorn then stops on SIGTERM and Ctrl-C
    # (its workers first) and leaves its run the same way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = os.getpid()
    worker = start_embedded_worker() if settings.embedded_worker else None
    try:
        Server(app, server_options(settings)).run()
    finally:
        # gunicorn's workers are forks of this process and leave through this `finally` too:
        # only the process that started the Celery worker stops it.
        if worker is not None and os.getpid() == server:
            worker.terminate()  # a warm shutdown: the task at hand finishes or goes back
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    main()
