"""The sign-in lockout (portus_fab.auth.lockout) on FAB's password sign-ins, the web form and the
JSON `login` of its security API, and the admins' screen of the locks that hold now.

FAB checks the password in its security manager (`auth_user_db`, `auth_user_ldap`), which both
sign-ins call: failures are counted there, with the name as given. A locked attempt is refused
before FAB's view runs, so FAB never checks its password: the web form flashes why and for how
long, the JSON sign-in answers 401 with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, flash, jsonify, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_appbuilder.security.decorators import has_access
from flask_wtf import FlaskForm
from sqlalchemy import Engine
from werkzeug.wrappers import Response as BaseResponse
from wtforms import IntegerField
from wtforms.validators import InputRequired

from portus_fab.auth.lockout import Locked, Lockout, describe
from portus_fab.core import EXTENSION, portus
from portus_fab.models.lockout import SignInLock
from portus_fab.models.transaction import transaction

# The security manager's password checks, each called by FAB's sign-ins as check(name, password).
PASSWORD_CHECKS = ("auth_user_db", "auth_user_ldap")


def install(appbuilder: AppBuilder, app: Flask) -> None:
    lockout = app.extensions[EXTENSION].authentication.lockout
    engine = appbuilder.session.get_bind()
    sm = appbuilder.sm
    for name in PASSWORD_CHECKS:
        setattr(sm, name, _counting(getattr(sm, name), lockout, engine))
    web, api = sign_in_endpoints(appbuilder)

    @app.before_request
    def refuse_locked_sign_in() -> BaseResponse | tuple[Response, int, dict[str, str]] | None:
        if request.method != "POST" or request.endpoint not in {web, api}:
            return None
        if request.endpoint == web:
            username = request.form.get("username")
        else:
            payload = request.get_json(silent=True)
            username = payload.get("username") if isinstance(payload, dict) else None
        if not isinstance(username, str) or not username:
            return None  # FAB refuses it without checking any password
        try:
            lockout.check(engine, lockout.attempt(username, request.remote_addr))
        except Locked as locked:
            if request.endpoint == api:
                headers = {"Retry-After": str(locked.retry_after)}
                return jsonify(message=str(locked)), 401, headers
            flash(str(locked), "danger")
            return redirect(appbuilder.get_url_for_login_with(request.args.get("next")))
        return None


PasswordCheck = Callable[[str, str], Any]


def _counting(check: PasswordCheck, lockout: Lockout, engine: Engine) -> PasswordCheck:
    """The check, with each failure counted for the name as given (existing or not)."""

    def counted(username: str, password: str) -> Any:
        user = check(username, password)
        if user is None and username:
            lockout.failed(engine, lockout.attempt(username, request.remote_addr))
        return user

    return counted


def sign_in_endpoints(appbuilder: AppBuilder) -> tuple[str | None, str | None]:
    """The endpoints of the web sign-in form and of the JSON sign-in, where they exist."""
    auth_view = getattr(appbuilder.sm, "auth_view", None)
    security_api = next(
        (view for view in appbuilder.baseviews if isinstance(view, appbuilder.sm.security_api)),
        None,
    )
    return (
        None if auth_view is None else f"{auth_view.endpoint}.login",
        None if security_api is None else f"{security_api.blueprint.name}.login",
    )


class LiftForm(FlaskForm):
    """One lock to lift, with the CSRF token of the screen."""

    lock = IntegerField(validators=[InputRequired()])


class SignInLockView(BaseView):
    """Admins only (no other role is given its permissions): the locks that hold now, each with
    a button that lifts it."""

    route_base = "/sign-in-locks"
    default_view = "locks"

    @expose("/")
    @has_access
    def locks(self) -> str:
        lockout = portus().authentication.lockout
        now = lockout.clock()
        locks = lockout.active(portus().session)
        return self.render_template(
            "portus_fab/sign_in_locks.html",
            title="Sign-in locks",
            locks=[(lock, describe(lock, now)) for lock in locks],
            form=LiftForm(),
        )

    @expose("/lift", methods=["POST"])
    @has_access
    def lift(self) -> BaseResponse:
        form = LiftForm()
        if form.validate_on_submit():
            core = portus()
            session = core.session
            with transaction(session):
                lock = session.get(SignInLock, form.lock.data)
                if lock is not None:
                    core.authentication.lockout.lift(session, [lock])
                    flash(f"Lifted the lock on {lock}.", "success")
                else:
                    flash("That lock no longer exists (it ended or was lifted).", "info")
        return redirect(url_for(".locks"))
