"""`GET /v2/token` through the Flask test client (registry-protocol.md, section 1)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select
from werkzeug.security import generate_password_hash

import portus_fab.auth.credentials as credentials
import portus_fab.views.registry.token as token_view
from portus_fab.access import management
from portus_fab.core import portus
from portus_fab.models import Visibility
from tests.conftest import FAST_HASH, add_user
from tests.support.statements import count_statements

TOKEN = "/v2/token"


# --- helpers -----------------------------------------------------------------------------------


def service(app: Flask) -> str:
    return portus().settings.registry_service


def get_token(
    client: FlaskClient,
    *scopes: str,
    auth: tuple[str, str] | None = None,
    **params: str,
) -> Any:
    query: list[tuple[str, str]] = [("scope", s) for s in scopes]
    query.extend(params.items())
    return client.get(TOKEN, query_string=query, auth=auth)


def claims_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_json()
    return jwt.decode(response.get_json()["token"], options={"verify_signature": False})


def access_of(response: Any) -> list[dict[str, Any]]:
    return claims_of(response)["access"]


def actions_of(response: Any) -> dict[str, list[str]]:
    return {f"{e['type']}:{e['name']}": e["actions"] for e in access_of(response)}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    (error,) = body["errors"]
    assert error["code"]
    assert error["message"]
    return error


def commit(app: Flask) -> None:
    app.appbuilder.session.commit()


@pytest.fixture
def world(app: Flask) -> dict[str, User]:
    """alice owns alice/ (private); bob has no role there; team namespaces of each visibility;
    root is an admin; carl is disabled."""
    users = {
        "alice": add_user(app, "alice"),
        "bob": add_user(app, "bob"),
        "viewer": add_user(app, "viewer"),
        "dev": add_user(app, "dev"),
        "root": add_user(app, "root", admin=True),
        "carl": add_user(app, "carl", active=False),
    }
    session = app.appbuilder.session
    for visibility in Visibility:
        management.create_namespace(session, f"t-{visibility}", visibility=visibility)
    team_ns = management.find_namespace(session, "t-private")
    management.set_grant(session, team_ns, "viewer", user=users["viewer"])
    management.set_grant(session, team_ns, "contributor", user=users["dev"])
    commit(app)
    return users


# --- credentials -------------------------------------------------------------------------------


def test_anonymous_without_scope(client: FlaskClient) -> None:
    response = get_token(client)
    claims = claims_of(response)
    assert claims["sub"] == ""
    assert claims["access"] == []


def test_anonymous_pulls_public_only(client: FlaskClient, world: dict[str, User]) -> None:
    response = get_token(
        client,
        "repository:t-public/app:pull,push",
        "repository:t-protected/app:pull",
        "repository:t-private/app:pull",
        "repository:busybox:pull",
    )
    assert actions_of(response) == {
        "repository:t-public/app": ["pull"],
        "repository:t-protected/app": [],
        "repository:t-private/app": [],
        "repository:busybox": ["pull"],
    }


def test_good_credentials_without_scope(client: FlaskClient, world: dict[str, User]) -> None:
    response = get_token(client, auth=("alice", "secret"), account="alice", client_id="docker")
    claims = claims_of(response)
    assert claims["sub"] == "alice"
    assert claims["access"] == []


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "secret"),
        ("carl", "secret"),  # disabled, right password
        ("", "secret"),
    ],
)
def test_bad_credentials_are_401(
    client: FlaskClient, world: dict[str, User], username: str, password: str
) -> None:
    response = get_token(client, "repository:t-public/app:pull", auth=(username, password))
    error = error_of(response, 401)
    assert error["code"] == "UNAUTHORIZED"
    assert "invalid username or password" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "token" not in response.get_json()


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!not-base64", "Digest x=y"])
def test_malformed_authorization_header_is_401(
    client: FlaskClient, world: dict[str, User], header: str
) -> None:
    response = client.get(TOKEN, headers={"Authorization": header})
    error_of(response, 401)


def test_account_mismatch_is_401(client: FlaskClient, world: dict[str, User]) -> None:
    response = get_token(client, auth=("alice", "secret"), account="bob")
    error = error_of(response, 401)
    assert "'bob'" in error["message"]
    # anonymous claiming an account is refused too
    error_of(get_token(client, account="alice"), 401)
    # the matching account is fine
    assert get_token(client, auth=("alice", "secret"), account="alice").status_code == 200


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [
        ("repository:alice/app", "expected type:name:actions"),
        ("repository:alice/App:pull", "'App'"),
        ("repository:alice/app:read", "unknown action 'read'"),
        ("image:alice/app:pull", "unknown resource type 'image'"),
        ("registry:catalog:pull", "registry:catalog:*"),
        ("repository:" + "a" * 256 + ":pull", "at most 255"),
    ],
)
def test_malformed_scope_is_400(
    client: FlaskClient, world: dict[str, User], scope: str, fragment: str
) -> None:
    response = get_token(client, "repository:alice/app:pull", scope, auth=("alice", "secret"))
    error = error_of(response, 400)
    assert error["code"] == "INVALID_SCOPE"
    assert scope in error["message"]
    assert fragment in error["message"]


def test_too_many_scopes_is_400(client: FlaskClient) -> None:
    scopes = [f"repository:ns/app{i}:pull" for i in range(65)]
    error = error_of(get_token(client, *scopes), 400)
    assert "too many scopes" in error["message"]


def test_wrong_service_is_400_and_names_the_expected_one(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    expected = service(app)
    response = get_token(client, auth=("alice", "secret"), service="registry.example.com")
    error = error_of(response, 400)
    assert error["code"] == "INVALID_SERVICE"
    assert expected in error["message"]
    assert "registry.example.com" in error["message"]
    assert get_token(client, auth=("alice", "secret"), service=expected).status_code == 200


# --- what the token grants ------------------------------------------------------------------------


def test_repeated_scopes_get_the_intersection(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    response = get_token(
        client,
        "repository:alice/app:pull,push",
        "repository:alice/other:delete repository:t-private/app:pull,push,delete",
        "repository:t-protected/app:pull,push",
        "repository:bob/app:pull",
        "repository:nowhere/app:pull,push",
        "repository(plugin):localhost:5000/alice/x:pull",
        auth=("alice", "secret"),
        service=service(app),
    )
    assert actions_of(response) == {
        "repository:alice/app": ["pull", "push"],
        "repository:alice/other": ["delete"],
        "repository:t-private/app": [],
        "repository:t-protected/app": ["pull"],
        "repository:bob/app": [],
        "repository:nowhere/app": [],
        # The token names what the policy judged, without the host prefix.
        "repository:alice/x": ["pull"],
    }


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("viewer", ["pull"]),
        ("dev", ["pull", "push"]),
        ("bob", []),
        ("root", ["pull", "push", "delete"]),
    ],
)
def test_team_namespace_rights(
    client: FlaskClient, world: dict[str, User], user: str, expected: list[str]
) -> None:
    response = get_token(client, "repository:t-private/app:pull,push,delete", auth=(user, "secret"))
    assert actions_of(response) == {"repository:t-private/app": expected}


def test_empty_access_is_still_200(client: FlaskClient, world: dict[str, User]) -> None:
    response = get_token(client, "repository:alice/app:pull,push", auth=("bob", "secret"))
    assert access_of(response) == [{"type": "repository", "name": "alice/app", "actions": []}]


@pytest.mark.parametrize(
    ("user", "scope", "granted"),
    [
        ("alice", "repository:alice/app:*", ["*"]),
        ("root", "repository:alice/app:*", ["*"]),
        ("root", "repository:busybox:*", ["*"]),
        ("dev", "repository:t-private/app:*", []),
        ("viewer", "repository:t-private/app:*", []),
        ("bob", "repository:t-public/app:*", []),
        ("alice", "repository:busybox:*", []),
        ("dev", "repository:t-private/app:*,pull", ["pull"]),
    ],
)
def test_wildcard_only_for_whom_holds_every_right(
    client: FlaskClient, world: dict[str, User], user: str, scope: str, granted: list[str]
) -> None:
    response = get_token(client, scope, auth=(user, "secret"))
    (entry,) = access_of(response)
    assert entry["actions"] == granted


def test_wildcard_for_contributor_when_contributors_may_delete(
    template_dir: Any, tmp_path: Any
) -> None:
    from tests.conftest import make_app

    app = make_app(template_dir, tmp_path / "dbc", PORTUS_DELETE_BY_CONTRIBUTORS=True)
    with app.app_context():
        add_user(app, "dev")
        session = app.appbuilder.session
        namespace = management.create_namespace(session, "team")
        management.set_grant(session, namespace, "contributor", user=add_user(app, "other"))
        dev = session.scalar(select(User).where(User.username == "dev"))
        management.set_grant(session, namespace, "contributor", user=dev)
        commit(app)
        response = get_token(app.test_client(), "repository:team/app:*", auth=("dev", "secret"))
        assert actions_of(response) == {"repository:team/app": ["*"]}
        app.appbuilder.session.remove()


@pytest.mark.parametrize(
    ("auth", "granted"),
    [
        (("root", "secret"), True),
        (("alice", "secret"), False),
        (None, False),
    ],
)
def test_catalog_only_for_admins(
    client: FlaskClient, world: dict[str, User], auth: tuple[str, str] | None, granted: bool
) -> None:
    response = get_token(client, "registry:catalog:*", auth=auth)
    expected = [{"type": "registry", "name": "catalog", "actions": ["*"]}] if granted else []
    assert access_of(response) == expected


def test_response_fields(app: Flask, client: FlaskClient, world: dict[str, User]) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = get_token(client, "repository:alice/app:pull", auth=("alice", "secret"))
    after = dt.datetime.now(dt.UTC)
    body = response.get_json()
    assert body["token"] == body["access_token"]
    assert "refresh_token" not in body
    settings = portus().settings
    assert body["expires_in"] == settings.token_ttl >= 60
    issued_at = dt.datetime.fromisoformat(body["issued_at"])
    assert issued_at.tzinfo is not None
    assert before <= issued_at <= after

    key = portus().signing_key
    header = jwt.get_unverified_header(body["token"])
    assert header["kid"] == key.kid
    assert header["alg"] == key.algorithm
    assert header["x5c"]
    claims = jwt.decode(
        body["token"],
        key.certificate.public_key(),
        algorithms=[key.algorithm],
        audience=settings.registry_service,
        issuer=settings.token_issuer,
    )
    assert isinstance(claims["aud"], str)
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert claims["iat"] == int(issued_at.timestamp())


def test_jti_differs_between_tokens(client: FlaskClient, world: dict[str, User]) -> None:
    jtis = {claims_of(get_token(client, auth=("alice", "secret")))["jti"] for _ in range(5)}
    assert len(jtis) == 5


def test_denials_are_logged_with_reason_without_secret(
    client: FlaskClient, world: dict[str, User], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="portus_fab.views.registry.token"):
        get_token(client, "repository:t-private/app:pull,push", auth=("viewer", "secret"))
        get_token(client, "repository:alice/app:pull", auth=("alice", "wrong-pw"))
    text = caplog.text
    assert "push on t-private/app denied: role viewer may not push" in text
    assert "token refused for 'alice': invalid username or password" in text
    assert "secret" not in text
    assert "wrong-pw" not in text


# --- queries --------------------------------------------------------------------------------------


def queries_for(
    app: Flask, client: FlaskClient, scopes: list[str], auth: Any, *, warm: bool = False
) -> list[str]:
    """Statements of one token request: by default with cold decision caches (the policy's own
    queries), the credential cache warm (no password hash, but the user is loaded)."""
    get_token(client, *scopes, auth=auth)  # warm up (and fill the credential cache)
    if not warm:
        portus().decisions.clear()
    with count_statements(app) as statements:
        response = get_token(client, *scopes, auth=auth)
    assert response.status_code == 200
    return statements


@pytest.mark.parametrize("auth", [("alice", "secret"), None])
def test_returning_client_costs_one_query(
    app: Flask, client: FlaskClient, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(app, "alice")
    commit(app)
    epochs: list[int] = []

    def counting_epoch(bind: Any) -> int:
        epochs.append(real_epoch(bind))
        return epochs[-1]

    real_epoch = token_view.current_epoch
    monkeypatch.setattr(token_view, "current_epoch", counting_epoch)
    statements = queries_for(app, client, scopes(3), auth, warm=True)
    # Only the policy epoch ("is anything cached stale?"), read on a raw DB-API connection.
    assert statements == []
    assert len(epochs) == 2  # the warm-up request and the measured one


@pytest.fixture
def busy_and_idle(app: Flask) -> dict[str, User]:
    """Two users with the same rights on ns0..ns4: `idle` through 1 team and 1 grant, `busy`
    through 20 teams and 20 direct grants on other namespaces."""
    session = app.appbuilder.session
    idle, busy = add_user(app, "idle"), add_user(app, "busy")
    namespaces = [management.create_namespace(session, f"ns{i}") for i in range(25)]
    team = management.create_team(session, "small")
    management.add_member(session, team, idle, "contributor")
    management.add_member(session, team, busy, "contributor")
    for namespace in namespaces[:5]:
        management.set_grant(session, namespace, "owner", team=team)
    for i in range(20):
        extra = management.create_team(session, f"extra{i}")
        management.add_member(session, extra, busy, "viewer")
        management.set_grant(session, namespaces[i % 5], "viewer", team=extra)
        management.set_grant(session, namespaces[5 + i], "owner", user=busy)
    commit(app)
    return {"idle": idle, "busy": busy}


def scopes(n: int) -> list[str]:
    return [f"repository:ns{i}/app:pull,push" for i in range(n)]


def test_query_count_does_not_grow_with_teams_and_grants(
    app: Flask, client: FlaskClient, busy_and_idle: dict[str, User]
) -> None:
    for n in (1, 5):
        idle = queries_for(app, client, scopes(n), ("idle", "secret"))
        busy = queries_for(app, client, scopes(n), ("busy", "secret"))
        assert len(idle) == len(busy), (idle, busy)
    assert actions_of(get_token(client, *scopes(5), auth=("busy", "secret"))) == {
        f"repository:ns{i}/app": ["pull", "push"] for i in range(5)
    }


@pytest.mark.parametrize("auth", [("busy", "secret"), ("idle", "secret"), None])
def test_query_count_is_constant_per_scope(
    app: Flask, client: FlaskClient, busy_and_idle: dict[str, User], auth: Any
) -> None:
    counts = {n: len(queries_for(app, client, scopes(n), auth)) for n in (0, 1, 2, 5)}
    per_scope = counts[2] - counts[1]
    assert 1 <= per_scope <= 2
    assert counts[1] - counts[0] == per_scope
    assert counts[5] - counts[1] == 4 * per_scope
    assert counts[0] <= 4  # the user and their roles; nothing for anonymous


def test_same_repository_twice_costs_once(
    app: Flask, client: FlaskClient, busy_and_idle: dict[str, User]
) -> None:
    auth = ("busy", "secret")
    once = queries_for(app, client, ["repository:ns0/app:pull"], auth)
    twice = queries_for(app, client, ["repository:ns0/app:pull", "repository:ns0/app:push"], auth)
    assert len(once) == len(twice)


# --- credential cache, and writing nothing --------------------------------------------------------


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = credentials.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        calls.append(password)
        return real(pwhash, password)

    monkeypatch.setattr(credentials, "check_password_hash", counting)
    return calls


def test_returning_client_skips_the_password_hash(
    client: FlaskClient, world: dict[str, User], password_checks: list[str]
) -> None:
    for _ in range(3):
        assert get_token(client, auth=("alice", "secret")).status_code == 200
    assert password_checks == ["secret"]
    # other credentials are checked on their own
    assert get_token(client, auth=("bob", "secret")).status_code == 200
    assert len(password_checks) == 2


def test_password_change_drops_the_cached_verification(
    app: Flask, client: FlaskClient, world: dict[str, User], password_checks: list[str]
) -> None:
    assert get_token(client, auth=("alice", "secret")).status_code == 200
    user = world["alice"]
    user.password = generate_password_hash("new-secret", method=FAST_HASH)
    commit(app)
    error_of(get_token(client, auth=("alice", "secret")), 401)
    assert get_token(client, auth=("alice", "new-secret")).status_code == 200
    assert get_token(client, auth=("alice", "new-secret")).status_code == 200
    assert password_checks == ["secret", "secret", "new-secret"]
    error_of(get_token(client, auth=("alice", "secret")), 401)


def test_disabled_user_is_refused_although_cached(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    assert get_token(client, auth=("alice", "secret")).status_code == 200
    world["alice"].active = False
    commit(app)
    error_of(get_token(client, auth=("alice", "secret")), 401)
    world["alice"].active = True
    commit(app)
    assert get_token(client, auth=("alice", "secret")).status_code == 200


def test_role_change_applies_although_cached(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    catalog = "registry:catalog:*"
    assert access_of(get_token(client, catalog, auth=("alice", "secret"))) == []
    sm = app.appbuilder.sm
    world["alice"].roles.append(sm.find_role(sm.auth_role_admin))
    commit(app)
    assert access_of(get_token(client, catalog, auth=("alice", "secret"))) == [
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]


def test_failures_are_never_cached(
    client: FlaskClient, world: dict[str, User], password_checks: list[str]
) -> None:
    for _ in range(2):
        error_of(get_token(client, auth=("alice", "wrong")), 401)
    assert password_checks == ["wrong", "wrong"]
    # a success afterwards is checked and then cached
    assert get_token(client, auth=("alice", "secret")).status_code == 200
    assert get_token(client, auth=("alice", "secret")).status_code == 200
    assert password_checks == ["wrong", "wrong", "secret"]


def test_unknown_user_still_spends_a_hash(
    client: FlaskClient, world: dict[str, User], password_checks: list[str]
) -> None:
    error_of(get_token(client, auth=("nobody", "pw")), 401)
    error_of(get_token(client, auth=("carl", "secret")), 401)
    assert password_checks == ["pw", "secret"]


def test_token_endpoint_writes_nothing(
    app: Flask, client: FlaskClient, world: dict[str, User]
) -> None:
    session = app.appbuilder.session

    def stats() -> tuple[Any, Any, Any]:
        session.expire_all()
        user = session.scalar(select(User).where(User.username == "alice"))
        return user.login_count, user.last_login, user.fail_login_count

    before = stats()
    with count_statements(app) as statements:
        get_token(client, "repository:alice/app:pull", auth=("alice", "secret"))
        get_token(client, "repository:alice/app:pull", auth=("alice", "secret"))
        get_token(client, auth=("alice", "wrong"))
    assert stats() == before
    writes = [
        s
        for s in statements
        if s.lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
        # A failure's one kind of write: it counts towards a lock (test_lockout.py).
        and "portus_sign_in_" not in s
    ]
    assert writes == []
