"""The "Access tokens" screen: create (the secret shown once, with the docker login command),
list, revoke; no one sees or revokes another user's tokens, admins see everyone's."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.auth.secrets import PATTERN, SecretKind, looks_like
from portus_fab.catalog import repositories
from portus_fab.core import portus
from portus_fab.models import AccessToken
from tests.conftest import add_user


def login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": "secret"})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def create(client: FlaskClient, name: str, **fields: str) -> Any:
    return client.post("/access-tokens/create", data={"name": name, "access": "read", **fields})


def secret_of(response: Any) -> str:
    assert response.status_code == 200
    (secret,) = set(PATTERN.findall(response.get_data(as_text=True)))
    assert looks_like(secret, SecretKind.ACCESS_TOKEN)
    return secret


def ids(app: Flask, username: str) -> list[int]:
    session = app.appbuilder.session
    session.expire_all()
    user = app.appbuilder.sm.find_user(username=username)
    return list(session.scalars(select(AccessToken.id).where(AccessToken.user_id == user.id)))


def test_create_shows_the_secret_once_with_the_login_command_and_it_works(app: Flask) -> None:
    add_user(app, "alice")
    alice = login(app, "alice")
    response = create(alice, "laptop", access="write", namespaces="alice", expires_days="10")
    secret = secret_of(response)
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    host = portus().settings.registry_host
    assert f"docker login -u alice --password-stdin {host}" in page
    assert "pull, push in alice" in page
    listed = alice.get("/access-tokens/").get_data(as_text=True)
    assert "laptop" in listed and "pull, push in alice" in listed
    assert secret not in listed and not PATTERN.search(listed)
    token = app.test_client().get(
        "/v2/token", query_string={"scope": "repository:alice/x:pull"}, auth=("alice", secret)
    )
    assert token.status_code == 200


def test_refusals_are_shown_on_the_page_and_create_nothing(app: Flask) -> None:
    add_user(app, "alice")
    alice = login(app, "alice")
    secret_of(create(alice, "ci"))
    for fields in (
        {"name": "ci"},  # taken
        {"name": "bad/name"},
        {"name": "x", "expires_days": "100000"},
        {"name": "y", "never_expires": "y"},
        {"name": "z", "namespaces": "nowhere"},
        {"name": "w", "access": "admin"},
        {"name": ""},
    ):
        name = fields.pop("name")
        response = create(alice, name, **fields)
        assert response.status_code == 200
        assert not PATTERN.search(response.get_data(as_text=True)), fields
    assert len(ids(app, "alice")) == 1


def test_no_one_sees_or_revokes_another_users_tokens_admins_see_all(app: Flask) -> None:
    add_user(app, "alice")
    add_user(app, "bob")
    add_user(app, "root", admin=True)
    alice, bob, root = login(app, "alice"), login(app, "bob"), login(app, "root")
    secret_of(create(alice, "alice-ci"))
    secret_of(create(bob, "bob-ci"))
    (alice_id,) = ids(app, "alice")
    (bob_id,) = ids(app, "bob")

    bob_page = bob.get("/access-tokens/").get_data(as_text=True)
    assert "bob-ci" in bob_page and "alice-ci" not in bob_page
    assert f'data-token="{alice_id}"' not in bob_page
    root_page = root.get("/access-tokens/").get_data(as_text=True)
    assert "bob-ci" in root_page and "alice-ci" in root_page

    # Bob revoking Alice's token by its id: as absent as one that never existed.
    answer = bob.post("/access-tokens/revoke", data={"token": str(alice_id)}, follow_redirects=True)
    assert f"no access token {alice_id}" in answer.get_data(as_text=True)
    session = app.appbuilder.session
    session.expire_all()
    assert session.get(AccessToken, alice_id).revoked_at is None

    # Her own revoke works; an admin's on anyone's too.
    alice.post("/access-tokens/revoke", data={"token": str(alice_id)})
    root.post("/access-tokens/revoke", data={"token": str(bob_id)})
    session.expire_all()
    assert session.get(AccessToken, alice_id).revoked_at is not None
    assert session.get(AccessToken, bob_id).revoked_at is not None
    assert "revoked" in alice.get("/access-tokens/").get_data(as_text=True)


def test_anonymous_visitors_get_no_token_screen(app: Flask) -> None:
    add_user(app, "alice")
    secret_of(create(login(app, "alice"), "ci"))
    anonymous = app.test_client()
    for method, url in (("GET", "/access-tokens/"), ("POST", "/access-tokens/create")):
        response = anonymous.open(url, method=method, data={"name": "x", "access": "read"})
        assert response.status_code in (302, 401, 403)
        assert "ci" not in response.get_data(as_text=True) or response.status_code == 302
    assert re.search(r"login", anonymous.get("/access-tokens/").headers.get("Location", ""))
    assert len(ids(app, "alice")) == 1


def test_the_repository_page_says_which_credential_the_access_box_judges(app: Flask) -> None:
    add_user(app, "alice")
    session = app.appbuilder.session
    at = dt.datetime(2024, 1, 1)
    push = repositories.Push("alice/app", "v1", f"sha256:{1:064x}", None, "alice", at)
    repositories.record_pushes(session, [push])
    session.commit()
    page = login(app, "alice").get("/registry/repositories/alice/app").get_data(as_text=True)
    assert "Credential: password or web sign-in; ceiling: none" in page
