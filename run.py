"""The standalone portus_fab application: `python run.py` serves it, `flask --app run ...` runs
its CLI (FAB's `fab` commands and portus_fab's `portus` commands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def main() -> None:
    app = create_app()
    settings = app.extensions["portus_fab"].settings
    app.run(host=settings.host, port=settings.port, threaded=True)


if __name__ == "__main__":
    main()
