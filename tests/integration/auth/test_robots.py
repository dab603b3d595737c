"""Robot accounts through the token endpoint and the domain functions: names, rights capped at
contributor, expiry, disable, delete, rotation (the old secret refused at once, in every
process), grants beyond their namespace only from its owners, and the audit record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL, Action, Policy
from portus_fab.audit import Kind
from portus_fab.auth import credentials, robots
from portus_fab.auth.credentials import principal_for
from portus_fab.auth.secrets import SecretKind, generate, kind_of
from portus_fab.core import portus
from portus_fab.errors import Conflict, Forbidden, Invalid, NotFound
from portus_fab.models import Activity, Robot, Role, Visibility
from portus_fab.models.namespaces import utcnow
from tests.conftest import USER_ROLE, add_user, make_app

TOKEN = "/v2/token"


def token(client: FlaskClient, auth: tuple[str, str] | None, *scopes: str) -> Any:
    return client.get(TOKEN, query_string=[("scope", s) for s in scopes], auth=auth)


def actions(answer: Any) -> dict[str, list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    claims = jwt.decode(answer.get_json()["token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


def create(app: Flask, namespace: str, name: str, access: str, **kwargs: Any) -> tuple[str, str]:
    session = app.appbuilder.session
    made = robots.create_robot(
        session, portus().authentication.hasher, INTERNAL, namespace, name, access, **kwargs
    )
    full_name = made.robot.full_name
    session.commit()
    return full_name, made.secret


def user_principal(app: Flask, user: Any) -> Any:
    return principal_for(user, portus().admin_role)


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    session = app.appbuilder.session
    owner = add_user(app, "olga")
    other = add_user(app, "bob")
    ci = management.create_namespace(session, "ci", visibility=Visibility.PRIVATE)
    prod = management.create_namespace(session, "prod", visibility=Visibility.PRIVATE)
    management.create_namespace(session, "shared", visibility=Visibility.PROTECTED)
    management.create_namespace(session, "open", visibility=Visibility.PUBLIC)
    management.set_grant(session, ci, Role.OWNER, user=owner)
    management.set_grant(session, prod, Role.OWNER, user=other)
    session.commit()
    return {"owner": owner, "other": other}


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ci", "deploy-bot", "a.b_c-9", "x" * 64])
def test_good_robot_names(name: str) -> None:
    assert robots.validate_robot_name(name) is None


@pytest.mark.parametrize(
    "name", ["", "Deploy", "a+b", "a$b", "-a", "a-", "a b", "a/b", "é", "x" * 65, "a..b"]
)
def test_bad_robot_names(name: str) -> None:
    assert robots.validate_robot_name(name)


@pytest.mark.parametrize("full_name", ["ci", "+bot", "ci+", ""])
def test_a_full_name_is_namespace_plus_name(full_name: str) -> None:
    with pytest.raises(Invalid):
        robots.split_full_name(full_name)


def test_the_secret_has_the_robot_prefix_and_only_its_hash_is_stored(
    app: Flask, world: dict[str, Any]
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    assert full_name == "ci+builder"
    assert secret.startswith("pfrb_") and kind_of(secret) is SecretKind.ROBOT
    stored = app.appbuilder.session.scalar(select(Robot))
    assert stored.secret_hash == portus().authentication.hasher.hash(secret)
    assert secret not in repr(
        [tuple(row) for row in app.appbuilder.session.execute(select(Robot.__table__))]
    )


def test_names_are_unique_per_namespace(app: Flask, world: dict[str, Any]) -> None:
    create(app, "ci", "builder", "write")
    with pytest.raises(Conflict):
        create(app, "ci", "builder", "read")
    assert create(app, "prod", "builder", "read")[0] == "prod+builder"


@pytest.mark.parametrize(
    ("namespace", "name", "access", "kwargs", "error"),
    [
        ("nowhere", "bot", "read", {}, NotFound),
        ("ci", "Bad Name", "read", {}, Invalid),
        ("ci", "bot", "admin", {}, Invalid),
        ("ci", "bot", "read", {"expires_days": 0}, Invalid),
        ("ci", "bot", "read", {"expires_days": 100_000}, Invalid),
        ("ci", "bot", "read", {"description": "x" * 2001}, Invalid),
    ],
)
def test_bad_creations_are_refused(
    app: Flask,
    world: dict[str, Any],
    namespace: str,
    name: str,
    access: str,
    kwargs: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        create(app, namespace, name, access, **kwargs)


# --- who manages robots -------------------------------------------------------------------------


def test_only_the_namespaces_owners_and_admins_create_and_change_robots(
    app: Flask, world: dict[str, Any]
) -> None:
    session = app.appbuilder.session
    hasher = portus().authentication.hasher
    owner = user_principal(app, world["owner"])
    other = user_principal(app, world["other"])
    made = robots.create_robot(session, hasher, owner, "ci", "builder", "write")
    for act in (
        lambda: robots.create_robot(session, hasher, other, "ci", "sneaky", "write"),
        lambda: robots.rotate_secret(session, hasher, other, made.robot),
        lambda: robots.set_disabled(session, other, made.robot, True),
        lambda: robots.delete_robot(session, other, made.robot),
        lambda: robots.set_robot_grant(session, other, made.robot.namespace, made.robot, "viewer"),
    ):
        with pytest.raises(Forbidden):
            act()


def test_a_robot_principal_never_manages(app: Flask, world: dict[str, Any]) -> None:
    full_name, _ = create(app, "ci", "builder", "write")
    robot = robots.find_robot(app.appbuilder.session, full_name)
    principal = robots.robot_principal(robot)
    decision = Policy(app.appbuilder.session).manage_namespace(principal, robot.namespace_id)
    assert not decision.allowed


# --- the token endpoint ------------------------------------------------------------------------


def test_write_pushes_and_pulls_its_namespace_only(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    robot = create(app, "ci", "builder", "write")
    got = actions(
        token(
            client,
            robot,
            "repository:ci/app:pull,push,delete",
            "repository:prod/app:pull,push",
            "repository:shared/app:pull",
            "repository:open/app:pull,push",
        )
    )
    assert got == {
        "ci/app": ["pull", "push"],  # contributor: never delete
        "prod/app": [],
        "shared/app": [],  # protected is "any logged-in user": a robot is not one
        "open/app": ["pull"],
    }


def test_read_only_pulls(app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    robot = create(app, "ci", "reader", "read")
    assert actions(token(client, robot, "repository:ci/app:pull,push")) == {"ci/app": ["pull"]}


def test_contributors_that_may_delete_do_not_make_robots_delete(
    template_dir: Path, tmp_path: Path
) -> None:
    app = make_app(template_dir, tmp_path / "data", PORTUS_DELETE_BY_CONTRIBUTORS=True)
    with app.app_context():
        management.create_namespace(app.appbuilder.session, "ci")
        app.appbuilder.session.commit()
        robot = create(app, "ci", "builder", "write")
        got = actions(token(app.test_client(), robot, "repository:ci/app:*,delete"))
        assert got == {"ci/app": []}
        app.appbuilder.session.remove()


def test_unknown_robot_and_wrong_secret_look_the_same(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    other_name, other_secret = create(app, "prod", "deployer", "write")
    answers = [
        token(client, auth)
        for auth in (
            ("ci+nobody", secret),  # no such robot, a real secret
            (full_name, other_secret),  # a real robot, another robot's secret
            (full_name, generate(SecretKind.ROBOT)),  # a well-formed wrong secret
            ("ci+nobody", generate(SecretKind.ROBOT)),
        )
    ]
    assert {answer.status_code for answer in answers} == {401}
    assert len({answer.get_data() for answer in answers}) == 1
    assert token(client, (full_name, secret)).status_code == 200
    assert token(client, (other_name, other_secret)).status_code == 200


def test_the_account_parameter_must_name_the_robot(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    ok = client.get(TOKEN, query_string={"account": full_name}, auth=(full_name, secret))
    assert ok.status_code == 200
    wrong = client.get(TOKEN, query_string={"account": "olga"}, auth=(full_name, secret))
    assert wrong.status_code == 401


def test_disable_enable_delete_take_effect_at_the_next_request(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    session = app.appbuilder.session
    assert token(client, (full_name, secret)).status_code == 200  # now cached
    robots.set_disabled(session, INTERNAL, robots.find_robot(session, full_name), True)
    session.commit()
    assert token(client, (full_name, secret)).status_code == 401
    robots.set_disabled(session, INTERNAL, robots.find_robot(session, full_name), False)
    session.commit()
    assert token(client, (full_name, secret)).status_code == 200
    robots.delete_robot(session, INTERNAL, robots.find_robot(session, full_name))
    session.commit()
    assert token(client, (full_name, secret)).status_code == 401


def test_an_expired_robot_is_refused_even_when_cached(
    app: Flask, client: FlaskClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    full_name, secret = create(app, "ci", "builder", "write", expires_days=1)
    assert token(client, (full_name, secret)).status_code == 200  # now cached
    # A day passes: no data changes, so no epoch bump tells the cache.
    later = utcnow() + dt.timedelta(days=1, seconds=1)
    monkeypatch.setattr(credentials, "utcnow", lambda: later)
    monkeypatch.setattr(robots, "utcnow", lambda: later)
    assert token(client, (full_name, secret)).status_code == 401
    portus().authentication.cache.clear()
    assert token(client, (full_name, secret)).status_code == 401


def test_rotation_refuses_the_old_secret_at_once_in_every_process(
    app: Flask, template_dir: Path, tmp_path: Path, world: dict[str, Any]
) -> None:
    """Two app instances on one database, each with its own credential cache, both warm."""
    full_name, old = create(app, "ci", "builder", "write")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    second = make_app(
        template_dir,
        tmp_path / "second",
        SQLALCHEMY_DATABASE_URI=uri,
        PORTUS_CREDENTIAL_HASH_KEY=portus().settings.credential_hash_key,
    )
    first_client, second_client = app.test_client(), second.test_client()
    assert token(first_client, (full_name, old)).status_code == 200
    assert token(second_client, (full_name, old)).status_code == 200
    session = app.appbuilder.session
    new = robots.rotate_secret(
        session, portus().authentication.hasher, INTERNAL, robots.find_robot(session, full_name)
    ).secret
    session.commit()
    for client in (first_client, second_client):
        assert token(client, (full_name, old)).status_code == 401
        assert actions(token(client, (full_name, new), "repository:ci/app:push")) == {
            "ci/app": ["push"]
        }


@pytest.mark.parametrize("change", ["disable", "delete"])
def test_disable_and_delete_refuse_at_once_in_every_process(
    app: Flask, template_dir: Path, tmp_path: Path, world: dict[str, Any], change: str
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    second = make_app(
        template_dir,
        tmp_path / "second",
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        PORTUS_CREDENTIAL_HASH_KEY=portus().settings.credential_hash_key,
    )
    clients = (app.test_client(), second.test_client())
    for client in clients:
        assert token(client, (full_name, secret)).status_code == 200  # both caches warm
    # The change made by the other process's CLI.
    with second.app_context():
        result = second.test_cli_runner().invoke(args=["portus", "robot", change, full_name])
        assert result.exit_code == 0, result.output
        second.appbuilder.session.remove()
    for client in clients:
        assert token(client, (full_name, secret)).status_code == 401


# --- grants ------------------------------------------------------------------------------------


def test_other_namespaces_only_through_their_owners_grant(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    session = app.appbuilder.session
    full_name, secret = create(app, "ci", "builder", "write")
    robot = robots.find_robot(session, full_name)
    prod = management.find_namespace(session, "prod")
    ci_owner = user_principal(app, world["owner"])
    prod_owner = user_principal(app, world["other"])
    with pytest.raises(Forbidden):  # the robot's own owner cannot reach into prod
        robots.set_robot_grant(session, ci_owner, prod, robot, Role.CONTRIBUTOR)
    with pytest.raises(Invalid):  # never owner
        robots.set_robot_grant(session, prod_owner, prod, robot, Role.OWNER)
    session.rollback()
    assert actions(token(client, (full_name, secret), "repository:prod/app:pull")) == {
        "prod/app": []
    }
    robot = robots.find_robot(session, full_name)
    prod = management.find_namespace(session, "prod")
    robots.set_robot_grant(session, prod_owner, prod, robot, Role.VIEWER)
    session.commit()
    assert actions(token(client, (full_name, secret), "repository:prod/app:pull,push")) == {
        "prod/app": ["pull"]
    }
    robots.set_robot_grant(session, prod_owner, prod, robot, Role.CONTRIBUTOR)
    session.commit()
    assert actions(token(client, (full_name, secret), "repository:prod/app:pull,push")) == {
        "prod/app": ["pull", "push"]
    }
    robots.remove_robot_grant(session, prod_owner, prod, robot)
    session.commit()
    assert actions(token(client, (full_name, secret), "repository:prod/app:pull,push")) == {
        "prod/app": []
    }


def test_explain_names_the_robot_grant(app: Flask, world: dict[str, Any]) -> None:
    full_name, _ = create(app, "ci", "builder", "write")
    robot = robots.find_robot(app.appbuilder.session, full_name)
    explanation = Policy(app.appbuilder.session).explain(robots.robot_principal(robot), "ci/app")
    assert explanation.allowed == {Action.PULL, Action.PUSH}
    assert "robot grant" in "\n".join(explanation.lines())
    assert "ci+builder (robot)" in explanation.lines()[0]


# --- the audit record ------------------------------------------------------------------------


def test_every_change_and_refused_use_is_recorded(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    session = app.appbuilder.session
    hasher = portus().authentication.hasher
    full_name, secret = create(app, "ci", "builder", "write")
    robot = robots.find_robot(session, full_name)
    robots.rotate_secret(session, hasher, INTERNAL, robot)
    robots.set_robot_grant(
        session, INTERNAL, management.find_namespace(session, "prod"), robot, "viewer"
    )
    robots.set_disabled(session, INTERNAL, robot, True)
    session.commit()
    secret = robots.rotate_secret(session, hasher, INTERNAL, robot).secret
    session.commit()
    assert token(client, (full_name, secret)).status_code == 401  # disabled
    robots.delete_robot(session, INTERNAL, robots.find_robot(session, full_name))
    session.commit()
    kinds = [
        (row.kind, row.target_name)
        for row in session.scalars(select(Activity).order_by(Activity.id))
        if row.target_name == full_name or (row.details or {}).get("robot") == full_name
    ]
    # Created with its grant on its own namespace, in one flush.
    assert sorted(kinds[:2]) == sorted([(Kind.ROBOT_CREATED, full_name), (Kind.GRANT_ADDED, "ci")])
    assert kinds[2:7] == [
        (Kind.ROBOT_ROTATED, full_name),
        (Kind.GRANT_ADDED, "prod"),
        (Kind.ROBOT_DISABLED, full_name),
        (Kind.ROBOT_ROTATED, full_name),
        (Kind.ROBOT_REFUSED, full_name),
    ]
    # Its grants go with it, in the same flush.
    assert sorted(kinds[7:]) == sorted(
        [
            (Kind.ROBOT_DELETED, full_name),
            (Kind.GRANT_REMOVED, "ci"),
            (Kind.GRANT_REMOVED, "prod"),
        ]
    )
    assert not any(secret in repr(row.details) for row in session.scalars(select(Activity)))


def test_last_use_is_written_once_a_minute_not_per_request(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    full_name, secret = create(app, "ci", "builder", "write")
    assert app.appbuilder.session.scalar(select(Robot.last_used_at)) is None
    for _ in range(3):
        assert token(client, (full_name, secret)).status_code == 200
    app.appbuilder.session.expire_all()
    first = app.appbuilder.session.scalar(select(Robot.last_used_at))
    assert first is not None
    assert token(client, (full_name, secret)).status_code == 200
    app.appbuilder.session.expire_all()
    assert app.appbuilder.session.scalar(select(Robot.last_used_at)) == first


def test_deleting_a_namespace_takes_its_robots_and_the_grants_on_it(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    session = app.appbuilder.session
    builder, builder_secret = create(app, "ci", "builder", "write")
    deployer, deployer_secret = create(app, "prod", "deployer", "write")
    robots.set_robot_grant(
        session,
        INTERNAL,
        management.find_namespace(session, "ci"),
        robots.find_robot(session, deployer),
        "viewer",
    )
    session.commit()
    assert actions(token(client, (deployer, deployer_secret), "repository:ci/app:pull")) == {
        "ci/app": ["pull"]
    }
    management.delete_namespace(session, "ci")
    session.commit()
    assert token(client, (builder, builder_secret)).status_code == 401
    assert [robot.full_name for robot in robots.list_robots(session)] == [deployer]
    assert [grant.namespace.name for grant in robots.find_robot(session, deployer).grants] == [
        "prod"
    ]


def test_explain_says_what_a_robot_may_do_and_why(
    app: Flask, runner: Any, world: dict[str, Any]
) -> None:
    create(app, "ci", "builder", "read")
    result = runner.invoke(args=["portus", "explain", "ci+builder", "ci/app"])
    assert result.exit_code == 0, result.output
    assert "ci+builder (robot)" in result.output
    assert "viewer through robot grant" in result.output
    assert "push: denied" in result.output
    session = app.appbuilder.session
    robots.set_disabled(session, INTERNAL, robots.find_robot(session, "ci+builder"), True)
    session.commit()
    result = runner.invoke(args=["portus", "explain", "ci+builder", "ci/app"])
    assert "pull: denied - the account is disabled" in result.output


@pytest.mark.parametrize("username", ["ci+builder", "team-a+x.y"])
def test_no_user_may_take_a_robots_form_of_name(app: Flask, username: str) -> None:
    """Tokens, registry events and the audit record name a principal by one string."""
    sm = app.appbuilder.sm
    role = sm.find_role(USER_ROLE)
    assert not sm.add_user(username, "x", "y", f"{username}@example.test", role, "pw")
    app.appbuilder.session.rollback()
    assert sm.find_user(username=username) is None


@pytest.mark.parametrize("username", ["alice+ci@example.com", "Alice+CI", "plain"])
def test_other_usernames_with_a_plus_stay_possible(app: Flask, username: str) -> None:
    assert add_user(app, username)
