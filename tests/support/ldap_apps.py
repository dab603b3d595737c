"""What the LDAP sign-in tests share: an app signing people in against the test slapd (with
its groups mapped to teams), the token endpoint's two forms, and what the lockout counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from portus_fab.models import Role, SignInFailure, Team, TeamMember
from tests.conftest import make_app
from tests.support.slapd import DEVS_DN, OPS_DN, Slapd, ldap_settings

SERVICE = "127.0.0.1:5000"
GROUP_TEAMS = {
    DEVS_DN: ["devs", "contributor"],
    OPS_DN: [["ops", "owner"], ["devs", "viewer"]],
}


def ldap_app(template_dir: Path, tmp_path: Path, directory: Slapd, **overrides: Any) -> Flask:
    settings = {
        **ldap_settings(directory),
        "PORTUS_GROUP_TEAMS": GROUP_TEAMS,
        # FAB's per-address rate limit is a brake of its own: off, so only the lockout counts.
        "PORTUS_LOGIN_RATE_LIMIT": "off",
        "PORTUS_LDAP_TIMEOUT": "2",
        # FAB's JSON sign-in signs a JWT with the secret key: PyJWT wants 32 bytes at least.
        "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
        **overrides,
    }
    return make_app(template_dir, tmp_path / "data", **settings)


def get_token(
    client: FlaskClient, username: str, password: str, *, scope: str | None = None, **args: str
) -> TestResponse:
    query = {"service": SERVICE, **args}
    if scope is not None:
        query["scope"] = scope
    return client.get("/v2/token", query_string=query, auth=(username, password))


def post_token(
    client: FlaskClient, username: str, password: str, *, scope: str | None = None
) -> TestResponse:
    form = {
        "grant_type": "password",
        "username": username,
        "password": password,
        "service": SERVICE,
        "client_id": "containerd",
    }
    if scope is not None:
        form["scope"] = scope
    return client.post("/v2/token", data=form)


def failures_counted(app: Flask) -> int:
    """Failed sign-ins the lockout holds (every account, every address)."""
    session = app.appbuilder.session
    counted = session.scalar(select(func.count()).select_from(SignInFailure))
    session.rollback()  # end the read: the next one sees the requests' writes
    return counted or 0


def granted(response: TestResponse) -> dict[str, list[str]]:
    """{repository: actions} the token of a token endpoint answer grants."""
    body = response.get_json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    return {entry["name"]: sorted(entry["actions"]) for entry in claims["access"]}


def teams_of(app: Flask, username: str) -> dict[str, tuple[str, str | None]]:
    """{team: (role, source)} of the user's memberships, as stored now."""
    session = app.appbuilder.session
    rows = session.execute(
        select(Team.name, TeamMember.role, TeamMember.source)
        .join(TeamMember.team)
        .join(User, User.id == TeamMember.user_id)
        .where(User.username == username)
    ).all()
    session.rollback()
    return {name: (Role(role).value, source) for name, role, source in rows}
