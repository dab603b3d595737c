"""The robot screens: a namespace's owners see and manage its robots, admins all of them, no one
else sees another namespace's robots on any page or direct URL; the secret is shown once; a
robot never signs in to the web UI."""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL
from portus_fab.auth import robots
from portus_fab.core import portus
from portus_fab.models import Robot, RobotGrant, Role, Visibility
from tests.conftest import add_user
from tests.support.routes import snapshot

PASSWORD = "secret"
SECRET_RE = re.compile(r"pfrb_[0-9A-Za-z]{36}")


def sign_in(app: Flask, username: str, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": password})
    return client


def signed_in(client: FlaskClient) -> bool:
    return client.get("/users/userinfo/").status_code == 200


def token_status(app: Flask, username: str, secret: str) -> int:
    return app.test_client().get("/v2/token", auth=(username, secret)).status_code


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    session = app.appbuilder.session
    add_user(app, "root", admin=True)
    olga = add_user(app, "olga")
    bob = add_user(app, "bob")
    add_user(app, "carol")
    ci = management.create_namespace(session, "ci", visibility=Visibility.PRIVATE)
    prod = management.create_namespace(session, "prod", visibility=Visibility.PRIVATE)
    management.set_grant(session, ci, Role.OWNER, user=olga)
    management.set_grant(session, prod, Role.OWNER, user=bob)
    hasher = portus().authentication.hasher
    ours = robots.create_robot(session, hasher, INTERNAL, "ci", "builder", "write")
    theirs = robots.create_robot(session, hasher, INTERNAL, "prod", "deployer", "read")
    session.commit()
    return {
        "ours": ours.robot.id,
        "ours_secret": ours.secret,
        "theirs": theirs.robot.id,
        "prod": prod.id,
    }


def test_lists_show_each_user_the_robots_of_the_namespaces_they_own(
    app: Flask, world: dict[str, Any]
) -> None:
    seen = {
        who: {
            name
            for name in ("ci+builder", "prod+deployer")
            if name in sign_in(app, who).get("/robotview/list/").get_data(as_text=True)
        }
        for who in ("root", "olga", "bob", "carol")
    }
    assert seen == {
        "root": {"ci+builder", "prod+deployer"},
        "olga": {"ci+builder"},
        "bob": {"prod+deployer"},
        "carol": set(),
    }


@pytest.mark.parametrize("action", ["rotate", "disable", "enable", "remove"])
def test_no_direct_url_reaches_another_namespaces_robot(
    app: Flask, world: dict[str, Any], action: str
) -> None:
    olga = sign_in(app, "olga")
    database = snapshot(app)
    before = database()
    assert olga.get(f"/robotview/show/{world['theirs']}").status_code == 404
    assert olga.post(f"/robotview/{action}/{world['theirs']}").status_code == 404
    assert olga.post(f"/robotview/{action}/999999").status_code == 404
    assert database() == before


def test_create_shows_the_secret_once_and_it_works(app: Flask, world: dict[str, Any]) -> None:
    olga = sign_in(app, "olga")
    form = olga.get("/robotview/new")
    assert form.status_code == 200
    page = form.get_data(as_text=True)
    assert 'value="ci"' in page and 'value="prod"' not in page  # only namespaces she owns
    answer = olga.post(
        "/robotview/new",
        data={"namespace": "ci", "name": "pusher", "access": "write", "description": "CI"},
    )
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    secrets = set(SECRET_RE.findall(answer.get_data(as_text=True)))
    assert len(secrets) == 1
    (secret,) = secrets
    assert "ci+pusher" in answer.get_data(as_text=True)
    assert token_status(app, "ci+pusher", secret) == 200
    # Never again: not on its page, not in the list.
    robot_id = app.appbuilder.session.scalar(select(Robot.id).where(Robot.name == "pusher"))
    for url in (f"/robotview/show/{robot_id}", "/robotview/list/"):
        assert secret not in olga.get(url).get_data(as_text=True)


def test_create_refuses_a_namespace_not_owned_and_bad_names(
    app: Flask, world: dict[str, Any]
) -> None:
    olga = sign_in(app, "olga")
    for data in (
        {"namespace": "prod", "name": "sneaky", "access": "write"},
        {"namespace": "ci", "name": "Bad Name", "access": "write"},
        {"namespace": "ci", "name": "builder", "access": "write"},  # exists
        {"namespace": "ci", "name": "late", "access": "write", "expires_days": "0"},
    ):
        answer = olga.post("/robotview/new", data=data)
        assert answer.status_code == 200
        assert not SECRET_RE.search(answer.get_data(as_text=True)), data
    names = set(app.appbuilder.session.scalars(select(Robot.name)))
    assert names == {"builder", "deployer"}


def test_rotate_disable_enable_delete_from_the_screen(app: Flask, world: dict[str, Any]) -> None:
    olga = sign_in(app, "olga")
    old = world["ours_secret"]
    assert token_status(app, "ci+builder", old) == 200
    answer = olga.post(f"/robotview/rotate/{world['ours']}")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    (new,) = set(SECRET_RE.findall(answer.get_data(as_text=True)))
    assert token_status(app, "ci+builder", old) == 401
    assert token_status(app, "ci+builder", new) == 200
    assert olga.post(f"/robotview/disable/{world['ours']}").status_code == 302
    assert token_status(app, "ci+builder", new) == 401
    assert "disabled" in olga.get(f"/robotview/show/{world['ours']}").get_data(as_text=True)
    assert olga.post(f"/robotview/enable/{world['ours']}").status_code == 302
    assert token_status(app, "ci+builder", new) == 200
    assert olga.post(f"/robotview/remove/{world['ours']}").status_code == 302
    assert token_status(app, "ci+builder", new) == 401
    app.appbuilder.session.expire_all()
    assert app.appbuilder.session.get(Robot, world["ours"]) is None


def test_state_changes_are_posts(app: Flask, world: dict[str, Any]) -> None:
    olga = sign_in(app, "olga")
    for action in ("rotate", "disable", "enable", "remove"):
        assert olga.get(f"/robotview/{action}/{world['ours']}").status_code == 405


def test_grants_on_another_namespace_come_from_its_owner(app: Flask, world: dict[str, Any]) -> None:
    olga, bob = sign_in(app, "olga"), sign_in(app, "bob")
    grant = {"namespace": str(world["prod"]), "robot": "ci+builder", "role": "contributor"}
    olga.post("/robotgrantview/add", data=grant)  # prod is not hers: not among the choices
    assert token_scope(app, world, "prod/app:pull") == []
    bob.post("/robotgrantview/add", data={**grant, "role": "owner"})  # never owner
    bob.post("/robotgrantview/add", data={**grant, "robot": "ci+nobody"})
    assert token_scope(app, world, "prod/app:pull") == []
    answer = bob.post("/robotgrantview/add", data=grant)
    assert answer.status_code == 302
    assert token_scope(app, world, "prod/app:pull,push") == ["pull", "push"]
    # Bob sees the grants on prod, Olga where her robot reaches, Carol nothing.
    listed = {
        who: sign_in(app, who).get("/robotgrantview/list/").get_data(as_text=True)
        for who in ("olga", "bob", "carol")
    }
    assert "ci+builder" in listed["olga"] and "ci+builder" in listed["bob"]
    assert "prod+deployer" in listed["bob"] and "prod+deployer" not in listed["olga"]
    assert "ci+builder" not in listed["carol"] and "prod+deployer" not in listed["carol"]
    # Only bob takes it back.
    pk = app.appbuilder.session.scalar(
        select(RobotGrant.id)
        .where(RobotGrant.namespace_id == world["prod"])
        .where(RobotGrant.robot_id == world["ours"])
    )
    olga.post(f"/robotgrantview/delete/{pk}")
    assert token_scope(app, world, "prod/app:pull") == ["pull"]
    bob.post(f"/robotgrantview/delete/{pk}")
    assert token_scope(app, world, "prod/app:pull") == []


def token_scope(app: Flask, world: dict[str, Any], scope: str) -> list[str]:
    answer = app.test_client().get(
        "/v2/token",
        query_string={"scope": f"repository:{scope}"},
        auth=("ci+builder", world["ours_secret"]),
    )
    assert answer.status_code == 200
    claims = jwt.decode(answer.get_json()["token"], options={"verify_signature": False})
    return claims["access"][0]["actions"]


def test_a_robot_never_signs_in_to_the_web_ui(app: Flask, world: dict[str, Any]) -> None:
    robot = sign_in(app, "ci+builder", world["ours_secret"])
    assert not signed_in(robot)
    assert robot.get("/robotview/list/").status_code != 200
    # Nor is it a FAB user anything else could sign in as.
    assert app.appbuilder.sm.find_user(username="ci+builder") is None
