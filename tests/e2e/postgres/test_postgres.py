"""The core paths on a real PostgreSQL (the production database of docker-compose.yml): the
schema and its constraints, personal namespaces, the policy's two questions, the token
endpoint's epoch-checked caches, and webhook ingestion's insert-unless-stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from portus_fab.access import management
from portus_fab.access.policy import ANONYMOUS, Action, Policy
from portus_fab.auth.credentials import principal_for
from portus_fab.core import EXTENSION, portus
from portus_fab.models import Grant, Namespace, RegistryEventRecord, Tag, epoch
from run import create_app
from tests.conftest import FAST_HASH, IsolatedClient, add_user
from tests.support.services import Postgres

pytestmark = pytest.mark.e2e

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


@pytest.fixture
def pg_app(postgres: Postgres, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flask]:
    """An app on a database of its own in the module's PostgreSQL server."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
            "SQLALCHEMY_DATABASE_URI": postgres.create_database(request.node.name.lower()),
            "PORTUS_DATA_DIR": str(tmp_path),
            "PORTUS_WEBHOOK_SECRET": "pg-secret",
            "PORTUS_BROKER_URL": "memory://",
            "FAB_PASSWORD_HASH_METHOD": FAST_HASH,
            "WTF_CSRF_ENABLED": False,
        }
    )
    app.test_client_class = IsolatedClient
    with app.app_context():
        if app.appbuilder.sm.find_role("User") is None:
            app.appbuilder.sm.add_role("User")
        yield app
        app.appbuilder.session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def test_users_namespaces_and_the_policy(pg_app: Flask) -> None:
    alice = add_user(pg_app, "Alice.Smith")
    bob = add_user(pg_app, "bob")
    session = pg_app.appbuilder.session
    assert session.scalar(select(Namespace.name).where(Namespace.user_id == alice.id)) == (
        "alice-smith"
    )
    team = management.create_team(session, "devs")
    management.add_member(session, team, bob, "viewer")
    management.set_grant(
        session, management.find_namespace(session, "alice-smith"), "owner", team=team
    )
    session.commit()
    policy = Policy(session)
    for principal in (ANONYMOUS, principal_for(alice, "Admin"), principal_for(bob, "Admin")):
        visible = set(
            session.scalars(select(Namespace.name).where(Policy.visible_namespaces(principal)))
        )
        pulls = Action.PULL in policy.explain(principal, "alice-smith/app").allowed
        assert pulls == ("alice-smith" in visible)
    assert policy.explain(principal_for(bob, "Admin"), "alice-smith/app").allowed == {Action.PULL}
    with pytest.raises(IntegrityError):  # the grant's one-principal CHECK holds on PostgreSQL
        session.add(Grant(namespace_id=1, role="viewer"))
        session.flush()
    session.rollback()


def test_token_caches_follow_the_epoch(pg_app: Flask) -> None:
    user = add_user(pg_app, "carol")
    pg_app.appbuilder.session.commit()
    client = pg_app.test_client()
    basic = {"Authorization": "Basic " + base64.b64encode(b"carol:secret").decode()}
    query = (
        f"/v2/token?service={portus().settings.registry_service}&scope=repository:carol/app:push"
    )
    assert client.get(query, headers=basic).status_code == 200
    user.active = False
    pg_app.appbuilder.session.commit()
    assert client.get(query, headers=basic).status_code == 401


def _envelope(*events: dict) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def _event(event_id: str, action: str, **target: object) -> dict:
    return {
        "id": event_id,
        "timestamp": "2026-01-01T00:00:00Z",
        "action": action,
        "target": {"repository": "dave/app", "digest": DIGEST, **target},
        "actor": {"name": "dave"},
    }


def test_webhook_stores_each_event_once(pg_app: Flask) -> None:
    add_user(pg_app, "dave")
    pg_app.appbuilder.session.commit()
    client = pg_app.test_client()
    headers = {"Authorization": "Bearer pg-secret"}
    body = _envelope(
        _event("e1", "push", tag="v1", mediaType="application/vnd.oci.image.manifest.v1+json"),
        _event("e2", "pull", tag="v1", mediaType="application/vnd.oci.image.manifest.v1+json"),
    )
    first = client.post("/v2/webhooks/events", data=body, headers=headers).get_json()
    again = client.post("/v2/webhooks/events", data=body, headers=headers).get_json()
    pg_app.extensions[EXTENSION].event_applier.flush()
    assert (first["accepted"], again["duplicates"]) == (2, 2)
    session = pg_app.appbuilder.session
    assert session.scalar(select(func.count()).select_from(RegistryEventRecord)) == 2
    tag = session.scalar(select(Tag).where(Tag.name == "v1"))
    assert (tag.digest, tag.pull_count, tag.pushed_by) == (DIGEST, 1, "dave")


def test_the_epoch_read_holds_no_transaction_and_outlives_a_killed_session(
    pg_app: Flask,
) -> None:
    """The token endpoint reads the epoch on a connection it holds: between requests it must sit
    idle (not "idle in transaction", which would hold back vacuum), and a session the server
    ended (a restart, an administrator's pg_terminate_backend) costs no request an error."""
    add_user(pg_app, "dora")
    pg_app.appbuilder.session.commit()
    client = pg_app.test_client()
    basic = {"Authorization": "Basic " + base64.b64encode(b"dora:secret").decode()}
    query = f"/v2/token?service={portus().settings.registry_service}&scope=repository:dora/a:pull"
    assert client.get(query, headers=basic).status_code == 200
    engine = pg_app.extensions["sqlalchemy"].engine
    reader = held_epoch_connection(engine)
    with engine.connect() as connection:
        state = connection.scalar(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": reader}
        )
        assert state == "idle"
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": reader})
    assert client.get(query, headers=basic).status_code == 200
    assert held_epoch_connection(engine) != reader


def held_epoch_connection(engine: Engine) -> int:
    """The backend pid of the connection this thread's epoch reads use."""
    return epoch._reader(engine)._local.held[1].dbapi_connection.info.backend_pid
