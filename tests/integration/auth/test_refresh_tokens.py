"""Refresh tokens and the OAuth2 form of the token protocol (POST /v2/token), through the Flask
test client: both grant types, several scopes, the errors in the GET form's JSON shape, the
refresh token `docker login` asks for, and every way one stops working - in every process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL
from portus_fab.audit import Kind
from portus_fab.auth import access_tokens, robots
from portus_fab.auth.secrets import SecretKind, generate, looks_like
from portus_fab.core import portus
from portus_fab.models import Activity, RefreshToken, Visibility
from tests.conftest import add_user, make_app
from tests.support.statements import count_statements

TOKEN = "/v2/token"
PASSWORD = "secret"


@pytest.fixture
def world(app: Flask) -> dict[str, User]:
    """alice owns alice/ (private); bob owns bob/ and may pull from team (private); root is an
    admin."""
    users = {name: add_user(app, name, PASSWORD) for name in ("alice", "bob")}
    users["root"] = add_user(app, "root", PASSWORD, admin=True)
    session = app.appbuilder.session
    team = management.create_namespace(session, "team", visibility=Visibility.PRIVATE)
    management.set_grant(session, team, "viewer", user=users["bob"])
    session.commit()
    return users


def service() -> str:
    return portus().settings.registry_service


def login(client: FlaskClient, username: str, **params: str) -> Any:
    """`docker login` as docker sends it: GET, Basic, offline_token and client_id, no scope."""
    query = {"service": service(), "offline_token": "true", "client_id": "docker", **params}
    return client.get(TOKEN, query_string={**query, "account": username}, auth=(username, PASSWORD))


def refresh_token_of(client: FlaskClient, username: str) -> str:
    answer = login(client, username)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["refresh_token"]


def post(client: FlaskClient, **form: str) -> Any:
    return client.post(TOKEN, data=form)


def refresh_grant(client: FlaskClient, token: str, scope: str = "", **form: str) -> Any:
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "service": service(),
        "client_id": "docker",
        "scope": scope,
        **form,
    }
    return post(client, **fields)


def password_grant(client: FlaskClient, username: str, scope: str = "", **form: str) -> Any:
    fields = {
        "grant_type": "password",
        "username": username,
        "password": PASSWORD,
        "service": service(),
        "client_id": "containerd-client",
        "scope": scope,
        **form,
    }
    return post(client, **fields)


def granted(answer: Any) -> dict[str, list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    claims = jwt.decode(answer.get_json()["access_token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


def error_of(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    (error,) = body["errors"]
    assert error["code"] == code
    assert error["message"] and body["details"] == error["message"]
    return error["message"]


def records(app: Flask, kind: Kind) -> list[Activity]:
    session = app.appbuilder.session
    session.expire_all()
    return list(session.scalars(select(Activity).where(Activity.kind == kind.value)))


def stored(app: Flask) -> list[RefreshToken]:
    session = app.appbuilder.session
    session.expire_all()
    return list(session.scalars(select(RefreshToken).order_by(RefreshToken.id)))


# --- docker login: GET with offline_token ------------------------------------------------------


def test_docker_login_gets_a_refresh_token(app: Flask, client: FlaskClient, world: Any) -> None:
    answer = login(client, "alice")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert looks_like(body["refresh_token"], SecretKind.REFRESH_TOKEN)
    assert body["token"] == body["access_token"] and granted(answer) == {}
    (row,) = stored(app)
    # Stored hashed, with its owner and client; the secret itself is nowhere.
    assert row.user.username == "alice" and row.client_id == "docker"
    assert row.secret_hash == portus().authentication.hasher.hash(body["refresh_token"])
    assert body["refresh_token"] not in repr([getattr(row, c.key) for c in row.__table__.c])
    (issued,) = records(app, Kind.REFRESH_TOKEN_ISSUED)
    assert issued.actor == "alice" and issued.details == {"client_id": "docker"}


def test_no_refresh_token_unless_asked(app: Flask, client: FlaskClient, world: Any) -> None:
    answer = client.get(TOKEN, query_string={"service": service()}, auth=("alice", PASSWORD))
    assert "refresh_token" not in answer.get_json()
    offline_false = login(client, "alice", offline_token="false")
    assert "refresh_token" not in offline_false.get_json()
    assert stored(app) == []


def test_anonymous_gets_no_refresh_token(app: Flask, client: FlaskClient) -> None:
    query = {"service": service(), "offline_token": "true", "client_id": "docker"}
    answer = client.get(TOKEN, query_string=query)
    assert answer.status_code == 200 and "refresh_token" not in answer.get_json()
    assert stored(app) == []


@pytest.mark.parametrize("client_id", [None, "", "tab\there", "x" * 129])
def test_offline_token_needs_a_client_id(
    app: Flask, client: FlaskClient, world: Any, client_id: str | None
) -> None:
    query = {"service": service(), "offline_token": "true"}
    if client_id is not None:
        query["client_id"] = client_id
    answer = client.get(TOKEN, query_string=query, auth=("alice", PASSWORD))
    assert "client_id" in error_of(answer, 400, "INVALID_REQUEST")
    assert stored(app) == []


# --- POST: both grant types --------------------------------------------------------------------


def test_password_grant_with_several_scopes(client: FlaskClient, world: Any) -> None:
    answer = password_grant(
        client, "bob", "repository:bob/app:pull,push repository:team/app:pull,push"
    )
    assert granted(answer) == {"bob/app": ["pull", "push"], "team/app": ["pull"]}
    body = answer.get_json()
    assert set(body) == {"access_token", "scope", "expires_in", "issued_at"}
    # What was granted, not what was asked.
    assert body["scope"] == "repository:bob/app:pull,push repository:team/app:pull"
    assert body["expires_in"] >= 60
    assert dt.datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert answer.headers["Cache-Control"] == "no-store"


def test_scope_fields_repeated_or_absent(client: FlaskClient, world: Any) -> None:
    repeated = client.post(
        TOKEN,
        data=MultiDict(
            [
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("service", service()),
                ("client_id", "buildkit"),
                ("scope", "repository:alice/a:pull"),
                ("scope", "repository:alice/b:push registry:catalog:*"),
            ]
        ),
    )
    assert granted(repeated) == {"alice/a": ["pull"], "alice/b": ["push"]}
    none = post(
        client,
        grant_type="password",
        username="alice",
        password=PASSWORD,
        service=service(),
        client_id="buildkit",
    )
    assert granted(none) == {} and none.get_json()["scope"] == ""


def test_password_grant_offline_issues_a_refresh_token(
    app: Flask, client: FlaskClient, world: Any
) -> None:
    answer = password_grant(client, "alice", access_type="offline")
    token = answer.get_json()["refresh_token"]
    (row,) = stored(app)
    assert row.client_id == "containerd-client"
    assert granted(refresh_grant(client, token, "repository:alice/app:pull")) == {
        "alice/app": ["pull"]
    }


def test_refresh_grant_with_several_scopes_and_no_rotation(
    app: Flask, client: FlaskClient, world: Any
) -> None:
    token = refresh_token_of(client, "bob")
    scope = "repository:bob/app:pull,push repository:team/app:pull repository:alice/app:pull"
    answers = [refresh_grant(client, token, scope) for _ in range(3)]
    for answer in answers:
        assert granted(answer) == {
            "bob/app": ["pull", "push"],
            "team/app": ["pull"],
            "alice/app": [],
        }
        assert "refresh_token" not in answer.get_json()
    # Asked for offline access again: the same token back, never a new one (moby issue 39718).
    again = refresh_grant(client, token, scope, access_type="offline")
    assert again.get_json()["refresh_token"] == token
    assert len(stored(app)) == 1
    assert granted(refresh_grant(client, token, "repository:bob/app:pull")) == {"bob/app": ["pull"]}


def test_the_refresh_token_acts_with_the_owners_rights_now(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    token = refresh_token_of(client, "alice")
    assert granted(refresh_grant(client, token, "repository:team/app:pull")) == {"team/app": []}
    session = app.appbuilder.session
    team = management.find_namespace(session, "team")
    management.set_grant(session, team, "viewer", user=world["alice"])
    session.commit()
    assert granted(refresh_grant(client, token, "repository:team/app:pull")) == {
        "team/app": ["pull"]
    }


def test_only_a_password_earns_a_refresh_token(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    """An access token or a robot's secret used as the password keeps its ceiling: a refresh
    token, which proves the bare owner, would lift it. Both forms, GET and POST."""
    core = portus()
    session = app.appbuilder.session
    rules = access_tokens.ExpiryRules(default_days=30, max_days=365, allow_no_expiry=False)
    token = access_tokens.create_token(
        session, core.authentication.hasher, rules, world["alice"], "ci", "read"
    )
    robot = robots.create_robot(
        session, core.authentication.hasher, INTERNAL, "alice", "builder", "write"
    )
    session.commit()
    query = {"service": service(), "offline_token": "true", "client_id": "docker"}
    for username, secret in (("alice", token.secret), (robot.robot.full_name, robot.secret)):
        answer = client.get(TOKEN, query_string=query, auth=(username, secret))
        assert answer.status_code == 200 and "refresh_token" not in answer.get_json()
        form = {"username": username, "password": secret, "access_type": "offline"}
        posted = post(client, grant_type="password", service=service(), client_id="ci", **form)
        assert posted.status_code == 200 and "refresh_token" not in posted.get_json()
    assert stored(app) == []


# --- errors, in the GET form's JSON shape ------------------------------------------------------


def good_password_form() -> dict[str, str]:
    return {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORD,
        "service": service(),
        "client_id": "containerd-client",
        "scope": "repository:alice/app:pull",
    }


@pytest.mark.parametrize(
    ("change", "status", "code", "says"),
    [
        ({"grant_type": None}, 400, "INVALID_REQUEST", "grant_type"),
        ({"grant_type": ""}, 400, "INVALID_REQUEST", "grant_type"),
        ({"grant_type": "authorization_code"}, 400, "UNSUPPORTED_GRANT_TYPE", "grant_type"),
        ({"grant_type": "client_credentials"}, 400, "UNSUPPORTED_GRANT_TYPE", "password"),
        ({"service": None}, 400, "INVALID_REQUEST", "service"),
        ({"service": "elsewhere.example"}, 400, "INVALID_SERVICE", "elsewhere.example"),
        ({"client_id": None}, 400, "INVALID_REQUEST", "client_id"),
        ({"client_id": "bad\x01id"}, 400, "INVALID_REQUEST", "client_id"),
        ({"username": None}, 400, "INVALID_REQUEST", "username"),
        ({"password": None}, 400, "INVALID_REQUEST", "password"),
        ({"password": "wrong"}, 401, "UNAUTHORIZED", "invalid username or password"),
        ({"username": "nobody"}, 401, "UNAUTHORIZED", "invalid username or password"),
        ({"scope": "repository:alice/app"}, 400, "INVALID_SCOPE", "malformed"),
        ({"scope": "repository:Alice/App:pull"}, 400, "INVALID_SCOPE", "Alice/App"),
        ({"scope": "repository:alice/app:pull,fly"}, 400, "INVALID_SCOPE", "fly"),
    ],
)
def test_password_grant_errors(
    client: FlaskClient,
    world: Any,
    change: dict[str, str | None],
    status: int,
    code: str,
    says: str,
) -> None:
    form = {**good_password_form(), **change}
    answer = post(client, **{k: v for k, v in form.items() if v is not None})
    assert says in error_of(answer, status, code)


@pytest.mark.parametrize(
    ("token", "status", "code", "says"),
    [
        (None, 400, "INVALID_REQUEST", "refresh_token"),
        ("", 400, "INVALID_REQUEST", "refresh_token"),
        ("not-a-token", 401, "UNAUTHORIZED", "invalid refresh token"),
        ("alice:secret", 401, "UNAUTHORIZED", "invalid refresh token"),
        (generate(SecretKind.REFRESH_TOKEN), 401, "UNAUTHORIZED", "invalid refresh token"),
        (generate(SecretKind.ACCESS_TOKEN), 401, "UNAUTHORIZED", "invalid refresh token"),
    ],
)
def test_refresh_grant_errors(
    client: FlaskClient, world: Any, token: str | None, status: int, code: str, says: str
) -> None:
    # A password cached a moment ago does not make its text a refresh token.
    assert password_grant(client, "alice").status_code == 200
    form = {"grant_type": "refresh_token", "service": service(), "client_id": "docker"}
    if token is not None:
        form["refresh_token"] = token
    assert says in error_of(post(client, **form), status, code)


def test_a_post_without_a_form_body(client: FlaskClient, world: Any) -> None:
    answer = client.post(TOKEN, json=good_password_form())
    assert "grant_type" in error_of(answer, 400, "INVALID_REQUEST")


# --- when a refresh token stops working --------------------------------------------------------


def refused(client: FlaskClient, token: str) -> bool:
    answer = refresh_grant(client, token, "repository:alice/app:pull")
    if answer.status_code == 200:
        return False
    error_of(answer, 401, "UNAUTHORIZED")
    return True


def test_owner_disabled_refuses_it(app: Flask, client: FlaskClient, world: Any) -> None:
    token = refresh_token_of(client, "alice")
    assert not refused(client, token)  # and now cached
    world["alice"].active = False
    app.appbuilder.session.commit()
    assert refused(client, token)
    (record,) = records(app, Kind.REFRESH_TOKEN_REFUSED)
    assert record.detail == "its owner is disabled" and record.actor == "alice"


def test_a_password_change_refuses_the_old_refresh_token(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    old = refresh_token_of(client, "alice")
    assert not refused(client, old)
    app.appbuilder.sm.reset_password(world["alice"].id, "another secret")
    assert refused(client, old)
    # The same password again is a new hash: the old token stays refused.
    app.appbuilder.sm.reset_password(world["alice"].id, PASSWORD)
    assert refused(client, old)
    assert not refused(client, refresh_token_of(client, "alice"))
    (record, *_) = records(app, Kind.REFRESH_TOKEN_REFUSED)
    assert record.detail == "its owner's password changed since it was issued"


def test_owner_deleted_refuses_it_and_takes_the_rows(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    token = refresh_token_of(client, "alice")
    assert not refused(client, token)
    session = app.appbuilder.session
    session.delete(world["alice"])
    session.commit()
    assert refused(client, token)
    assert stored(app) == []


def test_refused_use_is_recorded_once_a_minute(app: Flask, client: FlaskClient, world: Any) -> None:
    token = refresh_token_of(client, "alice")
    world["alice"].active = False
    app.appbuilder.session.commit()
    for _ in range(3):
        assert refused(client, token)
    assert len(records(app, Kind.REFRESH_TOKEN_REFUSED)) == 1


# --- last use, coalesced -----------------------------------------------------------------------


def test_last_use_is_written_at_most_once_a_minute(app: Flask, world: Any) -> None:
    client = app.test_client()
    token = refresh_token_of(client, "alice")
    (row,) = stored(app)
    assert row.last_used_at is None
    assert not refused(client, token)
    (row,) = stored(app)
    first = row.last_used_at
    assert first is not None
    portus().authentication.cache.clear()  # every request checks the token again
    with count_statements(app) as statements:
        for _ in range(5):
            assert not refused(client, token)
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert writes == []
    (row,) = stored(app)
    assert row.last_used_at == first


def test_a_returning_client_costs_one_query(app: Flask, client: FlaskClient, world: Any) -> None:
    token = refresh_token_of(client, "alice")
    assert not refused(client, token)
    with count_statements(app) as statements:
        assert not refused(client, token)
    # Only the policy epoch, read on a raw DB-API connection (which this count does not see).
    assert statements == []


# --- the owner's screen ------------------------------------------------------------------------


def signed_in(app: Flask, username: str) -> FlaskClient:
    browser = app.test_client()
    answer = browser.post("/login/", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 302
    return browser


def rows_on_screen(browser: FlaskClient) -> set[str]:
    page = browser.get("/refresh-tokens/")
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    return {
        line.split('data-token="')[1].split('"')[0]
        for line in html.split("\n")
        if "data-token" in line
    }


def test_each_user_sees_their_own_and_admins_all(app: Flask, world: Any) -> None:
    docker = app.test_client()
    alice_token = refresh_token_of(docker, "alice")
    refresh_token_of(docker, "bob")
    alice_row, bob_row = stored(app)
    alice = signed_in(app, "alice")
    assert rows_on_screen(alice) == {str(alice_row.id)}
    assert "<code>docker</code>" in alice.get("/refresh-tokens/").get_data(as_text=True)
    assert alice_token not in alice.get("/refresh-tokens/").get_data(as_text=True)
    assert rows_on_screen(signed_in(app, "root")) == {str(alice_row.id), str(bob_row.id)}


def test_revoking_on_the_screen_stops_it_at_once(app: Flask, world: Any) -> None:
    docker = app.test_client()
    token = refresh_token_of(docker, "alice")
    assert not refused(docker, token)  # cached now
    (row,) = stored(app)
    alice = signed_in(app, "alice")
    answer = alice.post("/refresh-tokens/revoke", data={"token": str(row.id)})
    assert answer.status_code == 302
    assert refused(docker, token)
    (row,) = stored(app)
    assert row.revoked_at is not None
    (revoked,) = records(app, Kind.REFRESH_TOKEN_REVOKED)
    assert revoked.actor == "alice" and revoked.target_name == f"alice/{row.id}"
    (refusal,) = records(app, Kind.REFRESH_TOKEN_REFUSED)
    assert refusal.detail == "revoked"
    # Once is enough; the screen says so.
    again = alice.post("/refresh-tokens/revoke", data={"token": str(row.id)}, follow_redirects=True)
    assert "already revoked" in again.get_data(as_text=True)


def test_nobody_revokes_someone_elses(app: Flask, world: Any) -> None:
    docker = app.test_client()
    token = refresh_token_of(docker, "alice")
    (row,) = stored(app)
    bob = signed_in(app, "bob")
    answer = bob.post("/refresh-tokens/revoke", data={"token": str(row.id)}, follow_redirects=True)
    assert f"no refresh token {row.id}" in answer.get_data(as_text=True)
    assert not refused(docker, token)
    root = signed_in(app, "root")
    assert root.post("/refresh-tokens/revoke", data={"token": str(row.id)}).status_code == 302
    assert refused(docker, token)


def test_revoke_needs_a_post(app: Flask, world: Any) -> None:
    alice = signed_in(app, "alice")
    assert alice.get("/refresh-tokens/revoke").status_code == 405


# --- two processes on one database -------------------------------------------------------------


@pytest.fixture
def second_app(app: Flask, template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    """Another app instance (another process's view) on the first app's database."""
    other = make_app(
        template_dir,
        tmp_path / "other",
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        PORTUS_DATA_DIR=app.config["PORTUS_DATA_DIR"],
    )
    yield other
    with other.app_context():
        other.appbuilder.session.remove()


def in_app(app: Flask, work: Any) -> Any:
    with app.app_context():
        try:
            return work()
        finally:
            app.appbuilder.session.remove()


def test_two_instances_on_one_database(
    app: Flask, second_app: Flask, world: dict[str, User]
) -> None:
    first, second = app.test_client(), second_app.test_client()
    token = refresh_token_of(first, "alice")
    other_token = refresh_token_of(first, "alice")
    assert in_app(second_app, lambda: not refused(second, token))  # cached in the second
    # Revoked in the first, refused at once by the second.
    alice = signed_in(app, "alice")
    row = stored(app)[0]
    assert alice.post("/refresh-tokens/revoke", data={"token": str(row.id)}).status_code == 302
    assert in_app(second_app, lambda: refused(second, token))
    assert in_app(second_app, lambda: not refused(second, other_token))
    # A password changed through the first: the second refuses the other token too.
    app.appbuilder.sm.reset_password(world["alice"].id, "brand new")
    assert in_app(second_app, lambda: refused(second, other_token))


def test_last_use_across_instances(app: Flask, second_app: Flask, world: Any) -> None:
    first, second = app.test_client(), second_app.test_client()
    token = refresh_token_of(first, "alice")
    assert not refused(first, token)
    stale = dt.datetime(2020, 1, 1)
    session = app.appbuilder.session
    session.execute(update(RefreshToken).values(last_used_at=stale))
    session.commit()
    # The second instance never noted this token: it writes, since the row is a minute old.
    assert in_app(second_app, lambda: not refused(second, token))
    (row,) = stored(app)
    assert row.last_used_at > stale
