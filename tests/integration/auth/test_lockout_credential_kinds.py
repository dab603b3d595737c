"""The sign-in lockout on every credential kind of the token endpoint: access tokens, robots'
secrets and the OAuth2 form's password grant count towards the same locks as passwords, and a
lock refuses the POST form in its own JSON error format (test_lockout.py covers the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.auth.secrets import SecretKind, generate
from tests.conftest import add_user, make_app
from tests.support.lockout import (
    ATTACKER,
    LOCKOUT_SETTINGS,
    PAIR_THRESHOLD,
    SERVICE,
    Clock,
    lockout_of,
    token,
)


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", **LOCKOUT_SETTINGS)
    with app.app_context():
        add_user(app, "alice", "right")
        lockout_of(app).clock = Clock()
        yield app
        app.appbuilder.session.remove()


def password_grant(client: FlaskClient, username: str, password: str, address: str) -> Any:
    form = {
        "grant_type": "password",
        "username": username,
        "password": password,
        "service": SERVICE,
        "client_id": "containerd",
    }
    return client.post("/v2/token", data=form, environ_base={"REMOTE_ADDR": address})


def test_every_credential_kind_counts_and_is_refused_alike(app: Flask, client: FlaskClient) -> None:
    """Access tokens, robots' secrets and the OAuth2 password grant pass through the same lock
    and count: their failures lock the pair, and the lock refuses the POST form in its JSON."""
    token(client, "alice", generate(SecretKind.ACCESS_TOKEN), ATTACKER)  # no such token
    assert password_grant(client, "alice", "wrong", ATTACKER).status_code == 401
    assert password_grant(client, "alice", "right", ATTACKER).status_code == 200
    token(client, "alice", "wrong", ATTACKER)
    refused = password_grant(client, "alice", "right", ATTACKER)
    assert refused.status_code == 401
    assert "locked" in refused.get_json()["errors"][0]["message"]
    for _ in range(PAIR_THRESHOLD):
        token(client, "alice+ci", generate(SecretKind.ROBOT), ATTACKER)
    locked = {lock.username for lock in lockout_of(app).active(app.appbuilder.session)}
    assert locked == {"alice", "alice+ci"}
