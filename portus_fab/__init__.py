"""portus_fab: token service, access policy and front end for a private container registry, as a
Flask-AppBuilder add-on. Enable it by listing `portus_fab.PortusManager` in `ADDON_MANAGERS`."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_appbuilder.basemanager import BaseManager
from sqlalchemy import Engine, event

from portus_fab import hooks
from portus_fab.core import EXTENSION, Portus
from portus_fab.management import ensure_global_namespace, ensure_policy_epoch
from portus_fab.models import portus_tables
from portus_fab.tasks import celery_init_app

__all__ = ["PortusManager"]


class PortusManager(BaseManager):
    """Wires the add-on into an AppBuilder: tables, hooks, blueprints, views and CLI commands.

    FAB only logs an exception raised here, so tests check that the routes really exist.
    """

    def pre_process(self) -> None:
        app = current_app._get_current_object()
        core = app.extensions[EXTENSION] = Portus.create(app)
        settings = core.settings
        celery_init_app(app, settings.broker_url, settings.sweep_interval, settings.sync_interval)
        hooks.install()
        session = self.appbuilder.session
        engine = session.get_bind()
        if engine.dialect.name == "sqlite":
            _tune_sqlite(engine)
        # FAB creates its own tables only; ours are created (if missing) here.
        portus_tables()[0].metadata.create_all(engine, tables=portus_tables())
        ensure_policy_epoch(session)
        ensure_global_namespace(session)
        session.commit()

    def register_views(self) -> None:
        from portus_fab.cli import portus_cli
        from portus_fab.views import register_views

        app = current_app._get_current_object()
        register_views(self.appbuilder, app)
        if "portus" not in app.cli.commands:
            app.cli.add_command(portus_cli)

    def post_process(self) -> None:
        from portus_fab.roles import sync_roles

        sync_roles(self.appbuilder.sm, current_app.extensions[EXTENSION].settings)


def _tune_sqlite(engine: Engine) -> None:
    """The embedded mode shares one SQLite file between the web server and the worker: WAL lets
    readers go on while one writes, and a busy timeout makes writers wait instead of failing."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL this is still crash-safe; only the last commits may be lost on power loss,
        # and the registry redelivers unacknowledged events anyway.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener get the pragmas too
