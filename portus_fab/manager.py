"""The FAB add-on manager: the one place that wires portus_fab into an AppBuilder (FAB's add-on
documentation puts it in `manager.py`)."""

from __future__ import annotations

from flask import current_app
from flask_appbuilder.basemanager import BaseManager

from portus_fab.access import hooks
from portus_fab.access.management import ensure_global_namespace, ensure_policy_epoch
from portus_fab.core import EXTENSION, Portus
from portus_fab.migrations import prepare_schema
from portus_fab.models import sqlite
from portus_fab.models.transaction import transaction
from portus_fab.tasks import celery_init_app, enqueue_enrich


class PortusManager(BaseManager):
    """Wires the add-on into an AppBuilder: tables, hooks, blueprints, views and CLI commands.

    FAB only logs an exception raised here, so tests check that the routes really exist.
    """

    def pre_process(self) -> None:
        app = current_app._get_current_object()
        core = app.extensions[EXTENSION] = Portus.create(app, publish_enrich=enqueue_enrich)
        settings = core.settings
        celery_init_app(app, settings.broker_url, settings.sweep_interval, settings.sync_interval)
        hooks.install()
        session = self.appbuilder.session
        engine = session.get_bind()
        if engine.dialect.name == "sqlite":
            sqlite.tune(engine)
        if not prepare_schema(engine, migrate=settings.auto_migrate):
            return  # the error is logged; `flask portus db upgrade` still works
        with transaction(session):
            ensure_policy_epoch(session)
            ensure_global_namespace(session)

    def register_views(self) -> None:
        from portus_fab.cli import portus_cli
        from portus_fab.views import register_views

        app = current_app._get_current_object()
        register_views(self.appbuilder, app)
        if "portus" not in app.cli.commands:
            app.cli.add_command(portus_cli)

    def post_process(self) -> None:
        from portus_fab.access.roles import sync_roles

        sync_roles(self.appbuilder.sm, current_app.extensions[EXTENSION].settings)
