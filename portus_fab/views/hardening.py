"""What guards the browser-facing app: a CSRF token on every state change, sign-out by POST only,
a limit on failed sign-ins, and headers that forbid framing and MIME sniffing.

Installed once per app, for the standalone app and for the add-on in a host FAB app alike; a host's
own CSRFProtect or enabled Flask-Limiter is reused, not replaced.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import BaseApi
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect

from portus_fab.settings import Settings

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = "Content-Security-Policy"
FRAME_ANCESTORS = "frame-ancestors 'none'"


class SignOutForm(FlaskForm):
    """No fields: carries the CSRF token of a sign-out."""


def install(appbuilder: AppBuilder, app: Flask, settings: Settings) -> CSRFProtect:
    """Guard the app; returns its CSRFProtect so the caller can exempt the registry's
    blueprints, whose clients have no browser session and so no token to send."""
    csrf = _protect_state_changes(appbuilder, app)
    _sign_out_by_post(appbuilder, app)
    if settings.login_rate_limit is not None:
        _limit_failed_sign_ins(appbuilder, app, settings)
    app.after_request(_security_headers)
    return csrf


def _protect_state_changes(appbuilder: AppBuilder, app: Flask) -> CSRFProtect:
    """With CSRFProtect every POST, PUT, PATCH and DELETE needs the session's token, and FAB then
    refuses its deletes and actions by GET (it allows them when no CSRFProtect exists)."""
    csrf = app.extensions.get("csrf") or CSRFProtect(app)
    # FAB exempts its REST API (for callers with a bearer token, who have no CSRF token) only
    # when CSRFProtect exists as the API is registered, which in the standalone app is before us.
    exempt = _exempt_apis(appbuilder)
    for view in exempt:
        csrf.exempt(view.blueprint)
    exempt_blueprints = frozenset(view.blueprint.name for view in exempt)

    @app.before_request
    def session_callers_send_the_token() -> None:
        # FAB's security API (users, roles, groups, permissions) also accepts the browser's
        # session cookie: a call that rides on a signed-in session, with no credentials of its
        # own, needs the token too. (Its JSON sign-in, sessionless, still works without one.)
        # The signed-in user is looked up last: every other POST (the token endpoint's OAuth2
        # form, the registry's notifications) would pay for loading a session it does not have.
        if (
            request.method in MUTATING_METHODS
            and request.blueprint in exempt_blueprints
            and "Authorization" not in request.headers
            and app.config.get("WTF_CSRF_ENABLED", True)
            and current_user.is_authenticated
        ):
            csrf.protect()

    return csrf


def _exempt_apis(appbuilder: AppBuilder) -> list[BaseApi]:
    return [
        view
        for view in appbuilder.baseviews
        if isinstance(view, BaseApi) and view.csrf_exempt and view.blueprint is not None
    ]


def _sign_out_by_post(appbuilder: AppBuilder, app: Flask) -> None:
    """FAB signs out on a GET, which any page on any site can send: keep the navbar's link,
    answer it with a confirmation, and sign out only on the confirmation's POST (with its token)."""
    auth_view = getattr(appbuilder.sm, "auth_view", None)
    endpoint = f"{auth_view.endpoint}.logout" if auth_view is not None else ""
    if endpoint not in app.view_functions:
        return  # FAB_ADD_SECURITY_VIEWS is off: there is no sign-out to guard
    sign_out = app.view_functions[endpoint]

    def logout() -> str | Response:
        if request.method == "POST":
            return sign_out()
        return auth_view.render_template(
            "portus_fab/confirm_logout.html", form=SignOutForm(), title="Sign out"
        )

    app.view_functions[endpoint] = logout
    for rule in list(app.url_map.iter_rules(endpoint)):
        app.add_url_rule(rule.rule, endpoint=endpoint, methods=["POST"])


def _limit_failed_sign_ins(appbuilder: AppBuilder, app: Flask, settings: Settings) -> None:
    """FAB's AUTH_RATE_LIMITED does nothing unless Flask-Limiter is enabled too, and it counts
    every sign-in; this counts failed ones only, so an office behind one address is not locked
    out by its own successful sign-ins, and guessing stops after the limit, right password or
    not. Both password forms are limited: the web sign-in and FAB's API `login`."""
    limiter = appbuilder.sm.limiter
    if not limiter.enabled:
        # FAB initialised its limiter disabled (RATELIMIT_ENABLED defaults to False).
        app.config["RATELIMIT_ENABLED"] = True
        app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_storage(settings.broker_url))
        # Redis down must not stop every sign-in: count in this process's memory meanwhile.
        app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
        limiter.init_app(app)
    rate = settings.login_rate_limit
    auth_view = getattr(appbuilder.sm, "auth_view", None)
    if auth_view is not None:
        login = f"{auth_view.endpoint}.login"
        limiter.limit(
            rate,
            methods=["POST"],
            exempt_when=lambda: request.endpoint != login,
            deduct_when=lambda _response: not current_user.is_authenticated,
        )(auth_view.blueprint)
    security_api = next(
        (view for view in appbuilder.baseviews if isinstance(view, appbuilder.sm.security_api)),
        None,
    )
    if security_api is not None:  # FAB_ADD_SECURITY_API: a JSON sign-in, guessable as well
        api_login = f"{security_api.blueprint.name}.login"
        limiter.limit(
            rate,
            methods=["POST"],
            exempt_when=lambda: request.endpoint != api_login,
            deduct_when=lambda response: response.status_code >= 400,
        )(security_api.blueprint)


def _limiter_storage(broker_url: str) -> str:
    """Redis when the broker is Redis, so every process counts the same failures; otherwise each
    process counts its own (a limit of N per process: weaker, still a limit)."""
    return broker_url if urlsplit(broker_url).scheme in {"redis", "rediss"} else "memory://"


def _security_headers(response: Response) -> Response:
    """No page may be framed by another site (the one-button delete confirmation would be a
    clickjacking target), and no answer may be sniffed into another type."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers.setdefault("X-Frame-Options", "DENY")
        # A host's own policy may already say where it may be framed: keep it.
        if not any("frame-ancestors" in policy for policy in response.headers.getlist(CSP)):
            response.headers.add(CSP, FRAME_ANCESTORS)
    return response
