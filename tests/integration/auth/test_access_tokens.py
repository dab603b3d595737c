"""Personal access tokens at the token endpoint: the ceiling of each level, the namespace limit,
expiry, revocation and the owner's state, seen at the next token request in every process."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

import portus_fab.auth.access_tokens as access_tokens
import portus_fab.auth.credentials as credentials
from portus_fab.access import management
from portus_fab.auth.access_tokens import ExpiryRules, create_token, revoke_token
from portus_fab.core import portus
from portus_fab.errors import Conflict, Invalid, NotFound
from portus_fab.models import AccessToken, Activity
from portus_fab.models.namespaces import utcnow
from run import create_app
from tests.conftest import IsolatedClient, add_user, app_config
from tests.support.statements import count_statements

TOKEN = "/v2/token"


def new_token(app: Flask, username: str, name: str = "ci", access: str = "write", **kw: Any) -> str:
    core = portus()
    session = app.appbuilder.session
    user = app.appbuilder.sm.find_user(username=username)
    rules = ExpiryRules.from_settings(core.settings)
    created = create_token(session, core.authentication.hasher, rules, user, name, access, **kw)
    session.commit()
    return created.secret


def ask(client: FlaskClient, auth: tuple[str, str] | None, *scopes: str) -> Any:
    query = [("scope", scope) for scope in scopes]
    return client.get(TOKEN, query_string=query, auth=auth)


def granted(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.get_json()
    claims = jwt.decode(response.get_json()["token"], options={"verify_signature": False})
    # Refused scopes come back with no actions (registry-protocol.md): leave them out.
    return {entry["name"]: entry["actions"] for entry in claims["access"] if entry["actions"]}


def refused(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json()["errors"][0]["message"] == "invalid username or password"


EVERYTHING = "repository:alice/app:pull,push,delete"


@pytest.fixture
def alice(app: Flask) -> Any:
    user = add_user(app, "alice")
    app.appbuilder.session.commit()
    return user


@pytest.mark.parametrize(
    ("level", "actions"),
    [("read", ["pull"]), ("write", ["pull", "push"]), ("delete", ["pull", "push", "delete"])],
)
def test_each_level_is_the_ceiling_of_what_the_token_grants(
    app: Flask, client: FlaskClient, alice: Any, level: str, actions: list[str]
) -> None:
    secret = new_token(app, "alice", access=level)
    assert granted(ask(client, ("alice", secret), EVERYTHING)) == {"alice/app": actions}


def test_a_token_never_grants_more_than_its_owner_has_now(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    session = app.appbuilder.session
    bob = add_user(app, "bob")
    team = management.create_namespace(session, "team")
    management.set_grant(session, team, "viewer", user=alice)
    session.commit()
    secret = new_token(app, "alice", access="delete")
    assert granted(ask(client, ("alice", secret), "repository:team/app:pull,push,delete")) == {
        "team/app": ["pull"]
    }
    assert granted(ask(client, ("alice", secret), "repository:bob/app:pull")) == {}
    # Her role taken away: at the very next request (the cache is keyed by the policy epoch).
    management.remove_grant(session, team, user=alice)
    session.commit()
    assert granted(ask(client, ("alice", secret), "repository:team/app:pull")) == {}
    assert bob


def test_a_token_limited_to_namespaces_acts_nowhere_else(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    session = app.appbuilder.session
    other = management.create_namespace(session, "other")
    management.set_grant(session, other, "owner", user=alice)
    session.commit()
    secret = new_token(app, "alice", namespaces=["other"])
    answer = granted(ask(client, ("alice", secret), EVERYTHING, "repository:other/app:pull,push"))
    assert answer == {"other/app": ["pull", "push"]}
    assert granted(ask(client, ("alice", secret), "registry:catalog:*")) == {}


def test_the_secret_is_stored_only_as_its_hash_and_creation_is_audited(
    app: Flask, alice: Any
) -> None:
    secret = new_token(app, "alice", namespaces=["alice"], expires_days=7)
    session = app.appbuilder.session
    token = session.scalars(select(AccessToken)).one()
    stored = " ".join(str(getattr(token, column.key)) for column in AccessToken.__table__.c)
    assert secret not in stored and secret[5:] not in stored
    assert token.secret_hash == portus().authentication.hasher.hash(secret)
    assert token.expires_at is not None
    assert dt.timedelta(days=6) < token.expires_at - utcnow() <= dt.timedelta(days=7)
    (created,) = session.scalars(select(Activity).where(Activity.kind == "access token created"))
    assert created.target_name == "alice/ci"
    assert created.details == {
        "access": "write",
        "namespaces": ["alice"],
        "expires_at": token.expires_at.isoformat(),
    }
    assert secret not in str(created.details)


def test_bad_input_is_refused_with_the_domain_errors(app: Flask, alice: Any) -> None:
    new_token(app, "alice")
    cases: list[tuple[type[Exception], dict[str, Any]]] = [
        (Conflict, {}),  # the same name again
        (Invalid, {"name": ""}),
        (Invalid, {"name": "a/b"}),
        (Invalid, {"name": "x" * 65}),
        (Invalid, {"name": "n2", "access": "admin"}),
        (Invalid, {"name": "n3", "expires_days": 0}),
        (Invalid, {"name": "n4", "expires_days": 367}),
        (Invalid, {"name": "n5", "never_expires": True}),  # not allowed by default
        (NotFound, {"name": "n6", "namespaces": ["nowhere"]}),
    ]
    for error, kw in cases:
        with pytest.raises(error):
            new_token(app, "alice", **kw)
        app.appbuilder.session.rollback()
    with pytest.raises(NotFound):
        revoke_token(app.appbuilder.session, alice, "nothing")


def test_never_expiring_only_when_the_admin_allows_it(template_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import make_app

    app = make_app(template_dir, tmp_path / "d", PORTUS_ACCESS_TOKEN_ALLOW_NO_EXPIRY="true")
    with app.app_context():
        add_user(app, "alice")
        new_token(app, "alice", never_expires=True)
        token = app.appbuilder.session.scalars(select(AccessToken)).one()
        assert token.expires_at is None
        app.appbuilder.session.remove()


def test_expiry_is_checked_on_every_request_even_when_cached(
    app: Flask, client: FlaskClient, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_token(app, "alice", expires_days=1)
    assert granted(ask(client, ("alice", secret), EVERYTHING))  # now in the credential cache
    # A day passes: no data changes, no epoch bump tells the cache.
    later = utcnow() + dt.timedelta(days=1, seconds=1)
    monkeypatch.setattr(credentials, "utcnow", lambda: later)
    monkeypatch.setattr(access_tokens, "utcnow", lambda: later)
    with count_statements(app) as statements:
        refused(ask(client, ("alice", secret), EVERYTHING))
    # The cached success was not used: the token was read again, and found expired.
    assert any("portus_access_token" in statement for statement in statements)


def test_revoked_expired_or_owner_disabled_or_deleted_is_refused(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    session = app.appbuilder.session
    secret = new_token(app, "alice")
    assert granted(ask(client, ("alice", secret), EVERYTHING))
    revoke_token(session, alice, "ci")
    session.commit()
    refused(ask(client, ("alice", secret), EVERYTHING))
    with pytest.raises(Conflict):
        revoke_token(session, alice, "ci")
    session.rollback()

    # A revoked name can be used again; the old secret stays dead.
    again = new_token(app, "alice")
    assert granted(ask(client, ("alice", again), EVERYTHING))
    refused(ask(client, ("alice", secret), EVERYTHING))

    alice.active = False
    session.commit()
    refused(ask(client, ("alice", again), EVERYTHING))
    alice.active = True
    session.commit()
    assert granted(ask(client, ("alice", again), EVERYTHING))

    assert granted(ask(client, ("alice", "secret"), EVERYTHING))  # her password cached too
    session.delete(alice)
    session.commit()
    refused(ask(client, ("alice", again), EVERYTHING))
    refused(ask(client, ("alice", "secret"), EVERYTHING))
    assert session.scalars(select(AccessToken)).all() == []


def test_refused_uses_are_audited_once_a_minute_per_token(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    session = app.appbuilder.session
    secret = new_token(app, "alice")
    revoke_token(session, alice, "ci")
    session.commit()
    for _ in range(3):
        refused(ask(client, ("alice", secret), EVERYTHING))
    session.expire_all()
    kinds = session.scalars(select(Activity.kind).order_by(Activity.id)).all()
    assert kinds[-3:] == ["access token created", "access token revoked", "access token refused"]
    refusal = session.scalars(select(Activity).where(Activity.kind == "access token refused")).one()
    assert refusal.detail == "revoked" and refusal.target_name == "alice/ci"
    assert secret not in f"{refusal.detail} {refusal.details} {refusal.actor}"


def test_the_token_goes_with_its_owners_name_only(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    add_user(app, "bob")
    secret = new_token(app, "alice")
    refused(ask(client, ("bob", secret), EVERYTHING))
    assert granted(ask(client, ("ALICE", secret), EVERYTHING))  # as FAB's login compares names


def test_unknown_user_and_wrong_token_look_the_same_and_no_password_hash_runs(
    app: Flask, client: FlaskClient, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = new_token(app, "alice")
    other = new_token(app, "alice", name="other")
    revoke_token(app.appbuilder.session, alice, "other")
    app.appbuilder.session.commit()
    hashes: list[str] = []
    real_check = credentials.check_password_hash
    monkeypatch.setattr(
        credentials,
        "check_password_hash",
        lambda stored, password: hashes.append(password) or real_check(stored, password),
    )
    from portus_fab.auth.secrets import SecretKind, generate

    unknown = generate(SecretKind.ACCESS_TOKEN)
    answers = []
    for auth in [("nobody", unknown), ("alice", unknown), ("nobody", real), ("alice", other)]:
        with count_statements(app) as statements:
            response = ask(client, auth, EVERYTHING)
        answers.append((response.status_code, response.get_data(), len(statements)))
    assert len({(status, body) for status, body, _ in answers}) == 1, answers
    assert answers[0][0] == 401
    # The same one read by hash, found or not (a refused real token also loads its owner).
    assert answers[0][2] == answers[1][2]
    assert hashes == []
    # And a password is never looked up as a token.
    with count_statements(app) as statements:
        assert granted(ask(client, ("alice", "secret"), EVERYTHING))
    assert not any("portus_access_token" in statement for statement in statements)


def test_last_use_is_recorded_at_most_once_a_minute_and_costs_no_query_when_cached(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    secret = new_token(app, "alice")
    assert granted(ask(client, ("alice", secret), EVERYTHING))
    session = app.appbuilder.session
    session.expire_all()
    token = session.scalars(select(AccessToken)).one()
    first = token.last_used_at
    assert first is not None and token.last_used_from == "127.0.0.1"
    for _ in range(5):
        with count_statements(app) as statements:
            assert granted(ask(client, ("alice", secret), EVERYTHING))
        # The epoch is read on a raw connection; decisions and the credential are cached.
        assert statements == []
    session.expire_all()
    assert session.scalars(select(AccessToken.last_used_at)).one() == first
    # A minute on, in this process: written again.
    last_use = portus().authentication.last_use
    last_use._throttle._last.clear()  # as if a minute had passed for this process
    with app.appbuilder.session.get_bind().begin() as connection:
        connection.execute(
            update(AccessToken).values(last_used_at=utcnow() - dt.timedelta(seconds=61))
        )
    with count_statements(app) as statements:
        assert granted(ask(client, ("alice", secret), EVERYTHING))
    assert len(statements) == 1 and statements[0].startswith("UPDATE portus_access_token")
    session.expire_all()
    assert session.scalars(select(AccessToken.last_used_at)).one() > first


def test_revocation_is_exact_across_two_app_instances_on_one_database(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    secret = new_token(app, "alice")
    data_dir = Path(portus().settings.data_dir)
    other = create_app(app_config(data_dir, FAB_UPDATE_PERMS=False))
    other.test_client_class = IsolatedClient
    other_client = other.test_client()
    for each in (client, other_client):
        assert granted(ask(each, ("alice", secret), EVERYTHING))  # cached in both processes
    revoke_token(app.appbuilder.session, alice, "ci")
    app.appbuilder.session.commit()
    for each in (other_client, client):
        refused(ask(each, ("alice", secret), EVERYTHING))
