"""The standalone portus_fab application.

- `python run.py` serves it and, on the embedded defaults, starts a Celery worker with the beat
  scheduler beside it (broker: an SQLite file in the data dir), so enrichment happens there too.
- `flask --app run ...` runs its CLI (FAB's `fab` commands and portus_fab's `portus` commands).
- `celery -A run:celery_app worker` runs a worker on its own (production, with Redis).
"""

from __future__ import annotations

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


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from config.py, with `overrides` on top (tests use a temporary database)."""
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


def main() -> None:
    app = create_app()
    settings = app.extensions["portus_fab"].settings
    worker = start_embedded_worker() if settings.embedded_worker else None
    # A plain `kill` must stop the worker too: turn SIGTERM into a normal exit through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)
    finally:
        if worker is not None:
            worker.terminate()  # a warm shutdown: the task at hand finishes or goes back
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    main()
