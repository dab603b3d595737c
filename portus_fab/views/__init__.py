"""Protocol surfaces only: each parses input, calls the core and renders the protocol's answer."""

from __future__ import annotations

from flask import Flask
from flask_appbuilder import AppBuilder

from portus_fab.views.token import token_blueprint
from portus_fab.views.webhook import webhook_blueprint


def register_views(appbuilder: AppBuilder, app: Flask) -> None:
    for blueprint in (token_blueprint, webhook_blueprint):
        app.register_blueprint(blueprint)
        # The registry and docker clients call without a browser session: no CSRF token to send.
        csrf = app.extensions.get("csrf")
        if csrf is not None:
            csrf.exempt(blueprint)
