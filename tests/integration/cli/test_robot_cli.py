"""`flask portus robot ...` and `portus grant|revoke --robot`: the output automation reads, and
bad input as one line and a non-zero exit."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.auth.secrets import SecretKind, kind_of
from portus_fab.models import Activity, Robot, Visibility
from portus_fab.models.namespaces import utcnow


@pytest.fixture
def namespaces(app: Flask) -> None:
    session = app.appbuilder.session
    management.create_namespace(session, "ci", visibility=Visibility.PRIVATE)
    management.create_namespace(session, "prod", visibility=Visibility.PRIVATE)
    session.commit()


def invoke(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["portus", *args])


def lines(result: Any) -> list[str]:
    return result.output.strip().splitlines()


def pull_push(app: Flask, username: str, secret: str, repository: str) -> list[str]:
    answer = app.test_client().get(
        "/v2/token",
        query_string={"scope": f"repository:{repository}:pull,push"},
        auth=(username, secret),
    )
    if answer.status_code != 200:
        return [f"refused {answer.status_code}"]
    claims = jwt.decode(answer.get_json()["token"], options={"verify_signature": False})
    return claims["access"][0]["actions"]


def test_create_prints_name_and_secret_last(app: Flask, runner: Any, namespaces: None) -> None:
    result = invoke(
        runner, "robot", "create", "ci", "builder", "--access", "write", "--expires-days", "30"
    )
    assert result.exit_code == 0, result.output
    name, secret = lines(result)[-2:]
    assert name == "ci+builder" and kind_of(secret) is SecretKind.ROBOT
    assert pull_push(app, name, secret, "ci/app") == ["pull", "push"]
    robot = app.appbuilder.session.scalar(select(Robot))
    assert robot.expires_at is not None and robot.expires_at > utcnow()
    assert robot.created_by and robot.created_by.startswith("cli:")


def test_rotate_prints_the_new_secret_alone_last(app: Flask, runner: Any, namespaces: None) -> None:
    _, old = lines(invoke(runner, "robot", "create", "ci", "builder", "--access", "read"))[-2:]
    result = invoke(runner, "robot", "rotate", "ci+builder")
    assert result.exit_code == 0, result.output
    new = lines(result)[-1]
    assert kind_of(new) is SecretKind.ROBOT and new != old
    assert pull_push(app, "ci+builder", old, "ci/app") == ["refused 401"]
    assert pull_push(app, "ci+builder", new, "ci/app") == ["pull"]


def test_disable_enable_delete_and_list(app: Flask, runner: Any, namespaces: None) -> None:
    _, secret = lines(invoke(runner, "robot", "create", "ci", "builder", "--access", "read"))[-2:]
    invoke(runner, "robot", "create", "prod", "deployer", "--access", "write")
    assert invoke(runner, "robot", "disable", "ci+builder").exit_code == 0
    assert pull_push(app, "ci+builder", secret, "ci/app") == ["refused 401"]
    listed = lines(invoke(runner, "robot", "list"))
    assert [line.split("\t")[:2] for line in listed] == [
        ["ci+builder", "disabled"],
        ["prod+deployer", "active"],
    ]
    assert lines(invoke(runner, "robot", "list", "prod"))[0].startswith("prod+deployer\t")
    assert invoke(runner, "robot", "enable", "ci+builder").exit_code == 0
    assert pull_push(app, "ci+builder", secret, "ci/app") == ["pull"]
    assert invoke(runner, "robot", "delete", "ci+builder").exit_code == 0
    assert pull_push(app, "ci+builder", secret, "ci/app") == ["refused 401"]
    assert [line.split("\t")[0] for line in lines(invoke(runner, "robot", "list"))] == [
        "prod+deployer"
    ]


def test_grant_and_revoke_a_robot(app: Flask, runner: Any, namespaces: None) -> None:
    _, secret = lines(invoke(runner, "robot", "create", "ci", "builder", "--access", "write"))[-2:]
    assert pull_push(app, "ci+builder", secret, "prod/app") == []
    result = invoke(runner, "grant", "prod", "--robot", "ci+builder", "--role", "viewer")
    assert result.exit_code == 0, result.output
    assert pull_push(app, "ci+builder", secret, "prod/app") == ["pull"]
    invoke(runner, "grant", "prod", "--robot", "ci+builder", "--role", "contributor")
    assert pull_push(app, "ci+builder", secret, "prod/app") == ["pull", "push"]
    assert invoke(runner, "revoke", "prod", "--robot", "ci+builder").exit_code == 0
    assert pull_push(app, "ci+builder", secret, "prod/app") == []


@pytest.mark.parametrize(
    "args",
    [
        ("robot", "create", "nowhere", "bot", "--access", "read"),
        ("robot", "create", "ci", "Bad Name", "--access", "read"),
        ("robot", "create", "ci", "bot", "--access", "admin"),
        ("robot", "create", "ci", "bot", "--access", "read", "--expires-days", "soon"),
        ("robot", "create", "ci", "bot", "--access", "read", "--expires-days", "0"),
        ("robot", "create", "ci", "taken", "--access", "read"),
        ("robot", "rotate", "ci+nobody"),
        ("robot", "disable", "no-plus-sign"),
        ("robot", "delete", "nowhere+bot"),
        ("robot", "list", "nowhere"),
        ("grant", "prod", "--robot", "ci+taken", "--role", "owner"),
        ("grant", "prod", "--robot", "ci+nobody", "--role", "viewer"),
        ("grant", "prod", "--robot", "ci+taken", "--user", "x", "--role", "viewer"),
        ("revoke", "prod", "--robot", "ci+taken"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    app: Flask, runner: Any, namespaces: None, args: tuple[str, ...]
) -> None:
    assert invoke(runner, "robot", "create", "ci", "taken", "--access", "read").exit_code == 0
    session = app.appbuilder.session
    records = session.scalar(select(Activity.id).order_by(Activity.id.desc()).limit(1))
    result = invoke(runner, *args)
    assert result.exit_code != 0
    assert len(lines(result)) == 1, result.output
    assert lines(result)[0].startswith("Error: ")
    session.expire_all()
    assert session.scalar(select(Activity.id).order_by(Activity.id.desc()).limit(1)) == records
