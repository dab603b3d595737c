"""A small world behind FAB's screens, for the walks over every route and form (bad parameters,
text limits) on SQLite and on PostgreSQL: an admin, a non-admin namespace owner through a team,
and one pushed tag, so every CRUD screen of portus_fab has a row to show and edit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from portus_fab.access import management
from portus_fab.catalog import repositories
from portus_fab.models import Grant, Role, TeamMember
from tests.conftest import add_user

ADMIN, OWNER = "boss", "olivia"
PASSWORD = "secret"
DIGEST = f"sha256:{1:064x}"
PUSHED_AT = dt.datetime(2024, 1, 1)

# Crashes become the 500s users would get.
CONFIG: dict[str, Any] = {"PROPAGATE_EXCEPTIONS": False}
# Self-registration on, for its form (reCAPTCHA is not checked under TESTING, but its key must
# be set to render).
WITH_REGISTRATION: dict[str, Any] = {
    **CONFIG,
    "AUTH_USER_REGISTRATION": True,
    "RECAPTCHA_PUBLIC_KEY": "test-key",
}


def populate(app: Flask) -> None:
    session = app.appbuilder.session
    add_user(app, ADMIN, PASSWORD, admin=True)
    owner = add_user(app, OWNER, PASSWORD)
    team = management.create_team(session, "devcrew", "the developers")
    namespace = management.create_namespace(session, "devteam", description="images")
    session.add_all(
        [
            TeamMember(team=team, user=owner, role=Role.OWNER),
            Grant(namespace=namespace, team=team, role=Role.OWNER),
        ]
    )
    push = repositories.Push("devteam/app", "latest", DIGEST, None, OWNER, PUSHED_AT)
    repositories.record_pushes(session, [push])
    session.commit()


def login(app: Flask, username: str | None) -> FlaskClient:
    """A client signed in as `username`; None: anonymous."""
    client = app.test_client()
    if username is not None:
        response = client.post("/login/", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client
