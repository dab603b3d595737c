"""Protocol surfaces only: each parses input, calls the core and renders the protocol's answer."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask
from flask_appbuilder import AppBuilder

from portus_fab.core import EXTENSION
from portus_fab.views import directory_login, hardening, lockout, oidc
from portus_fab.views.access_tokens import AccessTokenView
from portus_fab.views.admin import register_admin_views
from portus_fab.views.browse import BrowseView
from portus_fab.views.health import health_blueprint
from portus_fab.views.refresh_tokens import RefreshTokenView
from portus_fab.views.registry.token import token_blueprint
from portus_fab.views.registry.webhook import webhook_blueprint
from portus_fab.views.robots import register_robot_views

# Only carries portus_fab/templates into the app's template search path.
templates_blueprint = Blueprint(
    "portus_fab_templates",
    __name__,
    template_folder=str(Path(__file__).resolve().parent.parent / "templates"),
)

# The protocol surfaces the registry and its clients call: no browser session, no CSRF token.
REGISTRY_BLUEPRINTS = (token_blueprint, webhook_blueprint, health_blueprint)


def register_views(appbuilder: AppBuilder, app: Flask) -> None:
    csrf = hardening.install(appbuilder, app, app.extensions[EXTENSION].settings)
    app.register_blueprint(templates_blueprint)
    appbuilder.add_view(BrowseView, "Explore", icon="fa-search")
    register_admin_views(appbuilder)
    appbuilder.add_view(AccessTokenView, "Access tokens", icon="fa-key", category="Registry")
    appbuilder.add_view(RefreshTokenView, "Refresh tokens", icon="fa-refresh", category="Registry")
    # The lockout counts the failures of the directory's check, and only those: a directory
    # that cannot be reached is answered around it.
    directory_login.install(appbuilder, app)
    lockout.install(appbuilder, app)
    directory_login.answer_unreachable(appbuilder, app)
    oidc.install(appbuilder, app)
    appbuilder.add_view(
        lockout.SignInLockView, "Sign-in locks", icon="fa-lock", category="Security"
    )
    register_robot_views(appbuilder)
    for blueprint in REGISTRY_BLUEPRINTS:
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
