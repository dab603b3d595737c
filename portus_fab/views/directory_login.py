"""FAB's LDAP sign-ins (the web form and the JSON `login` with provider "ldap") through
portus_fab's directory sign-in (portus_fab.auth.directory_sign_in), the same one the token
endpoint uses: timeouts, users created with their roles and teams, and a directory that cannot
be reached told apart from a wrong password.

Both of FAB's sign-ins call `sm.auth_user_ldap(username, password)`. `install` replaces it, before
the lockout wraps it (views/lockout.py counts a None as a failure), with a check that raises
DirectoryUnreachable; `answer_unreachable`, after the lockout, turns that into FAB's "no user"
(uncounted: no one guessed wrong) with a message that says why: a flash on the web form, the JSON
sign-in's 401 body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, flash, g, jsonify, request
from flask_appbuilder import AppBuilder

from portus_fab.auth.authenticate import DIRECTORY_UNREACHABLE
from portus_fab.auth.directory import DirectoryUnreachable
from portus_fab.auth.directory_sign_in import DirectorySignIn
from portus_fab.core import EXTENSION
from portus_fab.views.lockout import sign_in_endpoints

log = logging.getLogger(__name__)

# Set on `g` when this request's sign-in could not reach the directory.
UNREACHABLE_FLAG = "portus_directory_unreachable"


def install(appbuilder: AppBuilder, app: Flask) -> None:
    """The directory check as FAB's `auth_user_ldap`; call before views.lockout.install."""
    directory = app.extensions[EXTENSION].authentication.directory
    if directory is None:
        return
    sm = appbuilder.sm
    sm.auth_user_ldap = _directory_check(directory, appbuilder)


def answer_unreachable(appbuilder: AppBuilder, app: Flask) -> None:
    """A directory that cannot be reached answered as such; call after views.lockout.install."""
    if app.extensions[EXTENSION].authentication.directory is None:
        return
    sm = appbuilder.sm
    sm.auth_user_ldap = _uncounted(sm.auth_user_ldap)
    _, api = sign_in_endpoints(appbuilder)

    @app.after_request
    def say_directory_unreachable(response: Response) -> Response:
        if request.endpoint == api and response.status_code == 401 and g.get(UNREACHABLE_FLAG):
            answer = jsonify(message=DIRECTORY_UNREACHABLE)
            answer.status_code = 401
            return answer
        return response


PasswordCheck = Callable[[str, str], Any]


def _directory_check(directory: DirectorySignIn, appbuilder: AppBuilder) -> PasswordCheck:
    def auth_user_ldap(username: str, password: str) -> Any:
        user = directory.sign_in(appbuilder.session, username, password)
        if user is not None:
            appbuilder.sm.update_user_auth_stat(user)  # as FAB: login count, last login
        return user

    return auth_user_ldap


def _uncounted(check: PasswordCheck) -> PasswordCheck:
    def auth_user_ldap(username: str, password: str) -> Any:
        try:
            return check(username, password)
        except DirectoryUnreachable as error:
            log.warning("sign-in of %r not checked: %s", username[:100], error.detail)
            setattr(g, UNREACHABLE_FLAG, True)
            if request.is_json:  # the JSON sign-in: its 401 says it (say_directory_unreachable)
                return None
            flash(DIRECTORY_UNREACHABLE, "danger")
            return None

    return auth_user_ldap
