"""`flask portus token create|list|revoke`: the secret alone on the last line, one-line errors."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.auth.secrets import SecretKind, looks_like
from tests.conftest import add_user


@pytest.fixture
def alice(app: Flask) -> Any:
    user = add_user(app, "alice")
    app.appbuilder.session.commit()
    return user


def run(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["portus", "token", *args])


def test_create_prints_the_secret_alone_on_its_last_line_and_it_works(
    runner: Any, client: FlaskClient, alice: Any
) -> None:
    result = run(runner, "create", "alice", "ci", "--access", "read", "--namespace", "alice")
    assert result.exit_code == 0, result.output
    *_, last = result.output.strip().splitlines()
    assert looks_like(last, SecretKind.ACCESS_TOKEN)
    assert "pull in alice" in result.output
    response = client.get(
        "/v2/token", query_string={"scope": "repository:alice/app:pull,push"}, auth=("alice", last)
    )
    assert response.status_code == 200

    listed = run(runner, "list", "alice")
    assert listed.exit_code == 0
    (line,) = listed.output.strip().splitlines()
    name, access, namespaces, _expires, last_used, address, state = line.split("\t")
    assert (name, access, namespaces, address, state) == (
        "ci",
        "read",
        "alice",
        "127.0.0.1",
        "active",
    )
    assert last_used != "-"
    assert last not in listed.output

    revoked = run(runner, "revoke", "alice", "ci")
    assert revoked.exit_code == 0, revoked.output
    assert run(runner, "list", "alice").output.strip().endswith("revoked")
    response = client.get("/v2/token", auth=("alice", last))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ["create", "nobody", "ci", "--access", "read"],
        ["create", "alice", "ci", "--access", "admin"],
        ["create", "alice", "", "--access", "read"],
        ["create", "alice", "ci", "--access", "read", "--expires-days", "0"],
        ["create", "alice", "ci", "--access", "read", "--expires-days", "9999"],
        ["create", "alice", "ci", "--access", "read", "--no-expiry"],
        ["create", "alice", "ci", "--access", "read", "--namespace", "nowhere"],
        ["list", "nobody"],
        ["revoke", "alice", "nothing"],
        ["revoke", "nobody", "ci"],
    ],
)
def test_bad_input_is_a_one_line_error_and_a_non_zero_exit(
    runner: Any, alice: Any, args: list[str]
) -> None:
    result = run(runner, *args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len([line for line in lines if line.startswith("Error")]) == 1, result.output
    assert "pfat_" not in result.output


def test_a_second_live_token_of_the_same_name_is_refused(runner: Any, alice: Any) -> None:
    assert run(runner, "create", "alice", "ci", "--access", "write").exit_code == 0
    again = run(runner, "create", "alice", "ci", "--access", "write")
    assert again.exit_code == 1
    assert "already has a token named 'ci'" in again.output


def test_explain_says_which_credential_and_ceiling_a_decision_came_from(
    runner: Any, alice: Any
) -> None:
    assert run(runner, "create", "alice", "ci", "--access", "read").exit_code == 0
    as_password = runner.invoke(args=["portus", "explain", "alice", "alice/app"])
    assert "credential: password or web sign-in; ceiling: none" in as_password.output
    assert "push: allowed" in as_password.output
    as_token = runner.invoke(args=["portus", "explain", "alice", "alice/app", "--token", "ci"])
    assert as_token.exit_code == 0, as_token.output
    assert (
        "credential: access token 'ci' of alice; ceiling: at most pull in every namespace"
        in as_token.output
    )
    assert "pull: allowed" in as_token.output and "push: denied" in as_token.output
    assert run(runner, "revoke", "alice", "ci").exit_code == 0
    revoked = runner.invoke(args=["portus", "explain", "alice", "alice/app", "--token", "ci"])
    assert "the token is revoked: the token service refuses it" in revoked.output
    missing = runner.invoke(args=["portus", "explain", "alice", "alice/app", "--token", "no"])
    assert missing.exit_code == 1 and "has no token named 'no'" in missing.output
