"""FAB's LDAP sign-ins, the web form and the JSON `login` with provider "ldap", against a real
slapd, through the same directory sign-in as the token endpoint: the user created with their
personal namespace, mapped roles and teams, roles synced at each sign-in; a wrong password
counted by the lockout; a directory that cannot be reached said as such (a flash, a 401 body),
never a 500 and never counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select
from werkzeug.test import TestResponse

from portus_fab.auth.authenticate import DIRECTORY_UNREACHABLE
from portus_fab.models import Namespace
from tests.support.ldap_apps import failures_counted, ldap_app, teams_of
from tests.support.slapd import ALICE, BOB, CAROL, OPS_DN, Slapd


@pytest.fixture
def app(template_dir: Path, tmp_path: Path, ldap_directory: Slapd) -> Iterator[Flask]:
    app = ldap_app(template_dir, tmp_path, ldap_directory)
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def web_sign_in(client: FlaskClient, username: str, password: str) -> TestResponse:
    return client.post("/login/", data={"username": username, "password": password})


def api_sign_in(client: FlaskClient, username: str, password: str) -> TestResponse:
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "ldap"},
    )


def signed_in(response: TestResponse) -> bool:
    return response.status_code == 302 and "/login" not in response.headers["Location"]


def roles_of(app: Flask, username: str) -> list[str]:
    session = app.appbuilder.session
    user = session.scalar(select(User).where(User.username == username))
    roles = [] if user is None else sorted(role.name for role in user.roles)
    session.rollback()
    return roles


def test_web_sign_in_creates_the_user_with_namespace_roles_and_teams(app: Flask) -> None:
    assert signed_in(web_sign_in(app.test_client(), ALICE.uid, ALICE.password))
    session = app.appbuilder.session
    user = session.scalar(select(User).where(User.username == "alice"))
    assert user is not None and user.email == ALICE.mail and user.login_count == 1
    assert roles_of(app, "alice") == ["Admin", "User"]
    personal = session.scalar(select(Namespace).where(Namespace.user_id == user.id))
    assert personal is not None and personal.name == "alice"
    assert teams_of(app, "alice") == {"devs": ("contributor", "ldap"), "ops": ("owner", "ldap")}


def test_roles_and_teams_follow_the_directory_at_each_sign_in(
    app: Flask, ldap_directory: Slapd
) -> None:
    assert signed_in(web_sign_in(app.test_client(), ALICE.uid, ALICE.password))
    ldap_directory.add_member(OPS_DN, BOB.dn)  # a group keeps one member at least
    ldap_directory.remove_member(OPS_DN, ALICE.dn)
    assert signed_in(web_sign_in(app.test_client(), ALICE.uid, ALICE.password))
    assert roles_of(app, "alice") == ["User"]
    assert teams_of(app, "alice") == {"devs": ("contributor", "ldap")}


@pytest.mark.parametrize(
    ("username", "password"),
    [(ALICE.uid, "not-her-password"), (CAROL.uid, CAROL.password), ("nobody", "x")],
    ids=["wrong password", "disabled", "unknown"],
)
def test_a_refused_web_sign_in_is_counted(app: Flask, username: str, password: str) -> None:
    client = app.test_client()
    counted = failures_counted(app)
    response = web_sign_in(client, username, password)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert failures_counted(app) == counted + 1
    assert roles_of(app, username) == []


def test_directory_down_the_web_form_says_so_uncounted(app: Flask, ldap_directory: Slapd) -> None:
    ldap_directory.stop()
    client = app.test_client()
    counted = failures_counted(app)
    response = client.post(
        "/login/",
        data={"username": BOB.uid, "password": BOB.password},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert DIRECTORY_UNREACHABLE in response.get_data(as_text=True)
    assert failures_counted(app) == counted


def test_the_json_sign_in(app: Flask, ldap_directory: Slapd) -> None:
    client = app.test_client()
    answer = api_sign_in(client, BOB.uid, BOB.password)
    assert answer.status_code == 200 and "access_token" in answer.get_json()
    assert roles_of(app, "bob") == ["User"]
    counted = failures_counted(app)
    assert api_sign_in(client, BOB.uid, "wrong").status_code == 401
    assert failures_counted(app) == counted + 1
    ldap_directory.stop()
    answer = api_sign_in(client, BOB.uid, BOB.password)
    assert answer.status_code == 401
    assert answer.get_json() == {"message": DIRECTORY_UNREACHABLE}
    assert failures_counted(app) == counted + 1
