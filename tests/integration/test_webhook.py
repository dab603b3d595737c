"""`POST /v2/webhooks/events` via the Flask test client, with events shaped like registry 2.8's."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from portus_fab.access.policy import INTERNAL_IDENTITY
from portus_fab.catalog import events, repositories
from portus_fab.catalog.applier import flush_at_exit
from portus_fab.core import EXTENSION, Portus
from portus_fab.models import (
    Activity,
    Namespace,
    NamespaceKind,
    RegistryEventRecord,
    Repository,
    Tag,
    Visibility,
)
from portus_fab.ops.diagnostics import check_events
from portus_fab.registry.manifests import (
    BLOB_MEDIA_TYPE,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from portus_fab.registry.notifications import parse_envelope
from portus_fab.tasks import ENRICH
from portus_fab.tasks.catalog import sweep_unenriched
from tests.conftest import add_user, make_app
from tests.support.statements import count_statements
from tests.support.wait import wait_until

URL = "/v2/webhooks/events"
SECRET = "test-webhook-secret"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
MANIFEST_TYPES = [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX]
T0 = dt.datetime(2024, 5, 1, 12, 0, 0)  # naive UTC, as stored


def digest_of(seed: str) -> str:
    return "sha256:" + (seed.encode().hex() * 64)[:64]


D1, D2, D3 = digest_of("one"), digest_of("two"), digest_of("three")


def event(
    action: str,
    repository: str = "alice/app",
    *,
    tag: str | None = None,
    digest: str | None = D1,
    media_type: str | None = DOCKER_MANIFEST,
    actor: str | None = "alice",
    at: dt.datetime = T0,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One event as registry 2.8.2 sends it (skopeo as the client)."""
    method = {"push": "PUT", "pull": "GET", "delete": "DELETE", "mount": "POST"}.get(action, "GET")
    reference = tag or digest or ""
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": 528,
        "digest": digest,
        "length": 528,
        "repository": repository,
        "url": f"http://registry.example.test:5000/v2/{repository}/manifests/{reference}",
        "tag": tag,
    }
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": at.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z"),
        "action": action,
        "target": {key: value for key, value in target.items() if value is not None},
        "request": {
            "id": str(uuid.uuid4()),
            "addr": "192.0.2.7:51234",
            "host": "registry.example.test:5000",
            "method": method,
            "useragent": "skopeo/1.9.3",
        },
        "actor": {"name": actor} if actor else {},
        "source": {"addr": "registry:5000", "instanceID": "8d0a4e6c-0000-4000-8000-000000000000"},
    }


def delete_event(repository: str = "alice/app", **target: Any) -> dict[str, Any]:
    """A delete as the registry sends it: no media type, a digest or a tag."""
    raw = event("delete", repository, tag=target.get("tag"), digest=target.get("digest"))
    raw["target"] = {"repository": repository, **target}
    return raw


def post(
    client: FlaskClient,
    body: Any,
    *,
    media_type: str = V1,
    authorization: str | None = f"Bearer {SECRET}",
    wait_applied: bool = True,
) -> Any:
    """POST an envelope, then (unless told not to) wait until the app has applied what it
    stored: it applies in a background thread moments after answering."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.post(URL, data=data, headers=headers, content_type=media_type)
    if wait_applied:
        client.application.extensions[EXTENSION].event_applier.flush()
    return response


def deliver(client: FlaskClient, *events: dict[str, Any], media_type: str = V1) -> dict[str, int]:
    response = post(client, {"events": list(events)}, media_type=media_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def count(app: Flask, model: type, *where: Any) -> int:
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def repository(app: Flask, name: str) -> Repository | None:
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(Repository).where(Repository.name == name))


def tag(app: Flask, name: str, tag_name: str) -> Tag | None:
    found = repository(app, name)
    return None if found is None else next((t for t in found.tags if t.name == tag_name), None)


def rejected(app: Flask) -> list[RegistryEventRecord]:
    session = app.appbuilder.session
    session.expire_all()
    return list(
        session.scalars(
            select(RegistryEventRecord)
            .where(RegistryEventRecord.status == "rejected")
            .order_by(RegistryEventRecord.id)
        )
    )


@pytest.fixture
def alice(app: Flask) -> Any:
    return add_user(app, "alice")


@pytest.fixture
def sent_tasks(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """What the endpoint hands to Celery, recorded instead of published."""
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def send_task(name: str, args: tuple[Any, ...] = (), **_kwargs: Any) -> None:
        sent.append((name, tuple(args)))

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    return sent


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-secret",
        f"Bearer {SECRET.upper()}",
        f"Bearer {SECRET}x",
        f"Bearer {SECRET[:-1]}",
        f"Basic {SECRET}",
        SECRET,
        f"Token {SECRET}",
    ],
    ids=lambda value: repr(value),
)
def test_unauthenticated_is_401_and_nothing_stored(
    app: Flask, client: FlaskClient, alice: Any, authorization: str | None
) -> None:
    body = {"events": [event("push", tag="v1"), event("push", "ghost/app", tag="v1")]}
    response = post(client, body, authorization=authorization)
    assert response.status_code == 401
    assert count(app, RegistryEventRecord) == 0
    assert count(app, Repository) == 0
    # Only the records of the app's own set-up (the global and alice's namespaces).
    assert count(app, Activity, Activity.target_type != "namespace") == 0


def test_unauthenticated_garbage_is_401_not_recorded(app: Flask, client: FlaskClient) -> None:
    response = post(client, b"\xff not json", authorization="Bearer nope")
    assert response.status_code == 401
    assert count(app, RegistryEventRecord) == 0


def test_scheme_is_case_insensitive(app: Flask, client: FlaskClient, alice: Any) -> None:
    """RFC 7235: the auth scheme is case-insensitive; the secret itself is not (see above)."""
    response = post(client, {"events": [event("push", tag="v1")]}, authorization=f"bearer {SECRET}")
    assert response.status_code == 200
    assert tag(app, "alice/app", "v1") is not None


# --- pushes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope_type", [V1, V2, "application/json"])
@pytest.mark.parametrize("manifest_type", MANIFEST_TYPES)
def test_manifest_push_creates_repository_and_tag(
    app: Flask,
    client: FlaskClient,
    alice: Any,
    sent_tasks: list[tuple[str, tuple[Any, ...]]],
    envelope_type: str,
    manifest_type: str,
) -> None:
    pushed_at = dt.datetime(2024, 5, 1, 10, 34, 56)
    raw = event("push", tag="v1", digest=D1, media_type=manifest_type, at=pushed_at)
    # Registry timestamps carry a zone and nanoseconds.
    raw["timestamp"] = "2024-05-01T12:34:56.123456789+02:00"
    summary = deliver(
        client,
        event("push", digest=digest_of("layer"), media_type=BLOB_MEDIA_TYPE),
        raw,
        media_type=envelope_type,
    )
    assert summary == {"accepted": 1, "duplicates": 0, "rejected": 0, "ignored": 1}

    stored = tag(app, "alice/app", "v1")
    assert stored is not None
    assert stored.digest == D1
    assert stored.media_type == manifest_type
    assert stored.pushed_by == "alice"
    assert stored.pushed_at.replace(microsecond=0) == pushed_at
    assert stored.enriched is False
    namespace = stored.repository.namespace
    assert (namespace.name, namespace.kind) == ("alice", NamespaceKind.PERSONAL)
    assert namespace.user_id == alice.id
    assert sent_tasks == [(ENRICH, ([["alice/app", D1]],))]
    assert count(app, Activity, Activity.kind == "push", Activity.tag == "v1") == 1


def test_push_in_unknown_namespace_adopts_it_private(app: Flask, client: FlaskClient) -> None:
    deliver(client, event("push", "ghost/tools/app", tag="1.0", actor="admin"))
    stored = tag(app, "ghost/tools/app", "1.0")
    assert stored is not None and stored.pushed_by == "admin"
    namespace = stored.repository.namespace
    assert namespace.name == "ghost"
    assert namespace.kind == NamespaceKind.ADOPTED
    assert namespace.visibility == Visibility.PRIVATE
    assert namespace.user_id is None


def test_push_without_namespace_lands_in_global(app: Flask, client: FlaskClient) -> None:
    deliver(client, event("push", "busybox", tag="latest", actor="admin"))
    stored = tag(app, "busybox", "latest")
    assert stored is not None
    assert stored.repository.namespace.kind == NamespaceKind.GLOBAL
    assert count(app, Namespace, Namespace.kind == NamespaceKind.ADOPTED) == 0


def test_push_by_digest_only_creates_no_tag(app: Flask, client: FlaskClient, alice: Any) -> None:
    """The children of an index are pushed by digest before the index itself."""
    summary = deliver(client, event("push", digest=D2, media_type=OCI_MANIFEST))
    assert summary["accepted"] == 1
    assert count(app, Tag) == 0


def test_tag_pushed_again_moves_and_keeps_history(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    deliver(client, event("push", tag="v1", digest=D1, at=T0))
    later = T0 + dt.timedelta(minutes=5)
    deliver(client, event("push", tag="v1", digest=D2, at=later, actor="bob"))

    stored = tag(app, "alice/app", "v1")
    assert (stored.digest, stored.pushed_by, stored.pushed_at) == (D2, "bob", later)
    assert count(app, Tag) == 1
    session = app.appbuilder.session
    moved = session.scalars(select(Activity).where(Activity.kind == "tag moved")).all()
    assert [(a.tag, a.digest, a.previous_digest, a.actor) for a in moved] == [("v1", D2, D1, "bob")]


def test_tag_moved_after_enrichment_is_no_longer_enriched(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    deliver(client, event("push", tag="v1", digest=D1))
    stored = tag(app, "alice/app", "v1")
    stored.enriched_digest = D1
    app.appbuilder.session.commit()
    assert tag(app, "alice/app", "v1").enriched
    deliver(client, event("push", tag="v1", digest=D2, at=T0 + dt.timedelta(seconds=1)))
    assert tag(app, "alice/app", "v1").enriched is False


# --- redelivery ----------------------------------------------------------------------------------


def test_redelivered_envelope_is_a_no_op(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", digest=D1))
    envelope = {
        "events": [
            event("push", tag="v2", digest=D2),
            event("pull", tag="v1", digest=D1),
            event("pull", tag="v1", digest=D1),
            delete_event(digest=D3),
            {"id": str(uuid.uuid4()), "action": "push"},  # rejected, with an id
        ]
    }
    first = post(client, envelope)
    assert first.status_code == 200
    assert first.get_json() == {"accepted": 4, "duplicates": 0, "rejected": 1, "ignored": 0}
    snapshot = (
        count(app, RegistryEventRecord),
        count(app, Activity),
        count(app, Tag),
        tag(app, "alice/app", "v1").pull_count,
        repository(app, "alice/app").pull_count,
    )
    assert snapshot[3:] == (2, 2)

    again = post(client, envelope)
    assert again.status_code == 200
    assert again.get_json() == {"accepted": 0, "duplicates": 5, "rejected": 0, "ignored": 0}
    assert (
        count(app, RegistryEventRecord),
        count(app, Activity),
        count(app, Tag),
        tag(app, "alice/app", "v1").pull_count,
        repository(app, "alice/app").pull_count,
    ) == snapshot


def test_same_id_twice_in_one_envelope_counts_once(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    deliver(client, event("push", tag="v1"))
    pull = event("pull", tag="v1")
    summary = deliver(client, pull, pull)
    assert summary["accepted"] == 1
    assert tag(app, "alice/app", "v1").pull_count == 1


def test_redelivered_push_does_not_move_tag_back(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    old = event("push", tag="v1", digest=D1, at=T0)
    deliver(client, old)
    deliver(client, event("push", tag="v1", digest=D2, at=T0 + dt.timedelta(seconds=1)))
    summary = deliver(client, old)
    assert summary["duplicates"] == 1
    assert tag(app, "alice/app", "v1").digest == D2


# --- pulls ---------------------------------------------------------------------------------------


@pytest.fixture
def pushed(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(
        client,
        event("push", tag="v1", digest=D1),
        event("push", tag="v2", digest=D2),
        event("push", "alice/other", tag="v1", digest=D3),
    )


def test_pull_by_tag_counts_on_tag_and_repository(
    app: Flask, client: FlaskClient, pushed: None
) -> None:
    at = T0 + dt.timedelta(hours=1)
    deliver(client, event("pull", tag="v1", digest=D1, at=at))
    v1 = tag(app, "alice/app", "v1")
    assert (v1.pull_count, v1.last_pulled_at) == (1, at)
    repo = repository(app, "alice/app")
    assert (repo.pull_count, repo.last_pulled_at) == (1, at)
    v2 = tag(app, "alice/app", "v2")
    assert (v2.pull_count, v2.last_pulled_at) == (0, None)
    assert repository(app, "alice/other").pull_count == 0


def test_many_pulls_in_one_envelope(app: Flask, client: FlaskClient, pushed: None) -> None:
    times = [T0 + dt.timedelta(minutes=m) for m in (7, 3, 9, 1)]
    summary = deliver(
        client,
        *(event("pull", tag="v1", digest=D1, at=at) for at in times),
        event("pull", tag="v2", digest=D2, at=T0 + dt.timedelta(minutes=2)),
        event("pull", digest=D2, at=T0 + dt.timedelta(minutes=4)),  # by digest: repository only
        event("pull", "alice/other", tag="v1", digest=D3, at=T0),
        event("pull", digest=digest_of("blob"), media_type=BLOB_MEDIA_TYPE),  # ignored
    )
    assert summary == {"accepted": 7, "duplicates": 0, "rejected": 0, "ignored": 1}
    v1, v2 = tag(app, "alice/app", "v1"), tag(app, "alice/app", "v2")
    assert (v1.pull_count, v1.last_pulled_at) == (4, max(times))
    assert (v2.pull_count, v2.last_pulled_at) == (1, T0 + dt.timedelta(minutes=2))
    repo = repository(app, "alice/app")
    assert (repo.pull_count, repo.last_pulled_at) == (6, max(times))
    assert repository(app, "alice/other").pull_count == 1


def test_late_pull_never_moves_last_pulled_back(
    app: Flask, client: FlaskClient, pushed: None
) -> None:
    late = T0 + dt.timedelta(hours=2)
    deliver(client, event("pull", tag="v1", at=late))
    deliver(client, event("pull", tag="v1", at=T0 + dt.timedelta(hours=1)))
    v1 = tag(app, "alice/app", "v1")
    assert (v1.pull_count, v1.last_pulled_at) == (2, late)
    assert repository(app, "alice/app").last_pulled_at == late


def test_internal_pulls_are_not_counted(app: Flask, client: FlaskClient, pushed: None) -> None:
    summary = deliver(client, event("pull", tag="v1", actor=INTERNAL_IDENTITY))
    assert summary["accepted"] == 1
    assert count(app, RegistryEventRecord, RegistryEventRecord.actor == INTERNAL_IDENTITY) == 1
    assert tag(app, "alice/app", "v1").pull_count == 0
    assert repository(app, "alice/app").pull_count == 0


def test_anonymous_pull_is_counted(app: Flask, client: FlaskClient, pushed: None) -> None:
    deliver(client, event("pull", tag="v1", actor=None))
    assert tag(app, "alice/app", "v1").pull_count == 1


def test_pull_of_unknown_repository_is_harmless(app: Flask, client: FlaskClient) -> None:
    summary = deliver(client, event("pull", "nobody/app", tag="v1"))
    assert summary["accepted"] == 1
    assert count(app, Repository) == 0


@pytest.mark.parametrize("action", ["push", "pull"])
def test_blob_events_are_ignored(
    app: Flask, client: FlaskClient, pushed: None, action: str
) -> None:
    before = count(app, RegistryEventRecord)
    summary = deliver(
        client,
        event(action, digest=digest_of("blob"), media_type=BLOB_MEDIA_TYPE),
        event(action, "alice/new", digest=digest_of("blob2"), media_type=BLOB_MEDIA_TYPE),
    )
    assert summary == {"accepted": 0, "duplicates": 0, "rejected": 0, "ignored": 2}
    assert count(app, RegistryEventRecord) == before
    assert repository(app, "alice/new") is None
    assert repository(app, "alice/app").pull_count == 0


# --- deletes -------------------------------------------------------------------------------------


def test_delete_by_digest_removes_every_tag_on_it(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    deliver(
        client,
        event("push", tag="v1", digest=D1),
        event("push", tag="latest", digest=D1),
        event("push", tag="v2", digest=D2),
    )
    summary = deliver(
        client,
        delete_event(digest=D1),
        # what follows a delete by digest: one delete per tag that pointed at it
        delete_event(tag="v1"),
        delete_event(tag="latest"),
    )
    assert summary == {"accepted": 3, "duplicates": 0, "rejected": 0, "ignored": 0}
    repo = repository(app, "alice/app")
    assert [t.name for t in repo.tags] == ["v2"]
    deleted = app.appbuilder.session.scalars(
        select(Activity.tag).where(Activity.kind == "delete").order_by(Activity.tag)
    ).all()
    assert deleted == ["latest", "v1"]


def test_delete_by_tag_removes_that_tag(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", digest=D1), event("push", tag="v2", digest=D1))
    deliver(client, delete_event(tag="v1"))
    assert [t.name for t in repository(app, "alice/app").tags] == ["v2"]


def test_repository_without_tags_is_removed(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", digest=D1), event("push", tag="v2", digest=D2))
    deliver(client, delete_event(digest=D1))
    assert repository(app, "alice/app") is not None
    deliver(client, delete_event(tag="v2"))
    assert repository(app, "alice/app") is None
    assert count(app, Tag) == 0
    assert count(app, Activity, Activity.kind == "repository removed") == 1
    # A later push recreates it.
    deliver(client, event("push", tag="v3", digest=D3, at=T0 + dt.timedelta(seconds=1)))
    assert [t.name for t in repository(app, "alice/app").tags] == ["v3"]


def test_delete_of_unknown_things_is_harmless(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", digest=D1))
    summary = deliver(
        client,
        delete_event(digest=D3),
        delete_event(tag="nope"),
        delete_event("nobody/app", digest=D1),
    )
    assert summary == {"accepted": 3, "duplicates": 0, "rejected": 0, "ignored": 0}
    assert [t.name for t in repository(app, "alice/app").tags] == ["v1"]


# --- ignored actions -----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["mount", "scan", "patch"])
def test_mount_and_unknown_actions_are_ignored(
    app: Flask, client: FlaskClient, alice: Any, action: str
) -> None:
    summary = deliver(client, event(action, tag="v1", digest=D1))
    assert summary == {"accepted": 0, "duplicates": 0, "rejected": 0, "ignored": 1}
    assert count(app, RegistryEventRecord) == 0
    assert count(app, Repository) == 0


# --- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"", "not JSON"),
        (b"[]", "not an object"),
        (b'"events"', "not an object"),
        (b"null", "not an object"),
        (b"{}", "'events'"),
        (b'{"events": {}}', "'events'"),
        (b'{"events": null}', "'events'"),
        (b'{"events": "push"}', "'events'"),
        (b"\xff\xfe{\x00", "UTF-8"),
        (b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "not JSON"),
        (b"x" * (5 * 1024 * 1024), "larger than"),
    ],
    ids=[
        "text",
        "empty",
        "array",
        "string",
        "null",
        "no-events",
        "events-object",
        "events-null",
        "events-string",
        "invalid-utf8",
        "deeply-nested",
        "5MB",
    ],
)
def test_unusable_body_is_recorded_as_rejected(
    app: Flask, client: FlaskClient, body: bytes, reason: str
) -> None:
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json()["rejected"] == 1
    (record,) = rejected(app)
    assert reason in record.reason
    assert record.raw is not None and len(record.raw) <= 4096


def test_5mb_valid_looking_envelope_is_rejected_not_applied(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    padding = "x" * (5 * 1024 * 1024)
    body = json.dumps({"events": [event("push", tag="v1")], "padding": padding}).encode()
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json()["rejected"] == 1
    assert count(app, Repository) == 0


def test_too_many_events_are_cut_and_said_so(app: Flask, client: FlaskClient) -> None:
    blob_pulls = [
        event("pull", digest=digest_of("b"), media_type=BLOB_MEDIA_TYPE) for _ in range(1001)
    ]
    summary = deliver(client, *blob_pulls)
    assert summary == {"accepted": 0, "duplicates": 0, "rejected": 1, "ignored": 1000}
    (record,) = rejected(app)
    assert "beyond the limit" in record.reason


def _with(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of an event with `path` (dotted) set to `value`, or removed if value is ...."""
    copy = json.loads(json.dumps(raw))
    *parents, last = path.split(".")
    node = copy
    for part in parents:
        node = node[part]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return copy


BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("id", ..., "no id"),
    ("id", 42, "id is a JSON number"),
    ("id", "", "id is empty"),
    ("id", "x" * 300, "longer than"),
    ("id", "bad\x00id", "unprintable"),
    ("action", ..., "no action"),
    ("action", ["push"], "action is invalid"),
    ("action", "PUSH!", "action is invalid"),
    ("target", ..., "target.repository is missing"),
    ("target", [], "target is a JSON array"),
    ("target", "alice/app", "target is a JSON string"),
    ("target.repository", ..., "target.repository is missing"),
    ("target.repository", "Alice/App", "target.repository"),
    ("target.repository", "alice/../etc", "target.repository"),
    ("target.repository", 7, "target.repository"),
    ("target.digest", ..., "without a digest"),
    ("target.digest", "sha256:short", "target.digest"),
    ("target.digest", 123, "target.digest is a JSON number"),
    ("target.tag", "bad tag!", "target.tag"),
    ("target.tag", 1.5, "target.tag is a JSON number"),
    ("target.mediaType", {"x": 1}, "target.mediaType is a JSON object"),
    ("target.size", "528", "target.size is a JSON string"),
    ("target.size", -1, "negative"),
    ("target.size", True, "target.size is a JSON boolean"),
    ("actor", "alice", "actor is a JSON string"),
    ("actor.name", 5, "actor.name is a JSON number"),
    ("request", [], "request is a JSON array"),
    ("request.useragent", False, "request.useragent"),
]


@pytest.mark.parametrize(
    ("path", "value", "reason"), BAD_EVENTS, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD_EVENTS]
)
def test_bad_event_is_rejected_and_the_rest_applied(
    app: Flask, client: FlaskClient, alice: Any, path: str, value: Any, reason: str
) -> None:
    bad = _with(event("push", tag="bad", digest=D3), path, value)
    summary = deliver(
        client,
        event("push", tag="v1", digest=D1),
        bad,
        event("push", tag="v2", digest=D2),
    )
    assert summary == {"accepted": 2, "duplicates": 0, "rejected": 1, "ignored": 0}
    assert [t.name for t in repository(app, "alice/app").tags] == ["v1", "v2"]
    (record,) = rejected(app)
    assert reason in record.reason
    assert record.raw
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "accepted") == 2


@pytest.mark.parametrize(
    "bad",
    [None, 42, "push", ["push"], True],
    ids=["null", "number", "string", "array", "bool"],
)
def test_event_that_is_not_an_object_is_rejected(
    app: Flask, client: FlaskClient, alice: Any, bad: Any
) -> None:
    summary = deliver(client, bad, event("push", tag="v1"))
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    assert "not an object" in rejected(app)[0].reason


@pytest.mark.parametrize(
    "bad",
    [
        delete_event(),  # neither digest nor tag
        event("pull", tag=None, digest=None),  # a manifest pull naming nothing
    ],
    ids=["delete-naming-nothing", "pull-naming-nothing"],
)
def test_events_naming_nothing_are_rejected(
    app: Flask, client: FlaskClient, alice: Any, bad: dict[str, Any]
) -> None:
    summary = deliver(client, bad)
    assert summary["rejected"] == 1
    assert rejected(app)[0].reason


def test_unprintable_actor_is_stored_safely(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", actor="ali\x00ce\ud800"))
    assert tag(app, "alice/app", "v1").pushed_by == "ali?ce?"


def test_missing_timestamp_uses_arrival_time(app: Flask, client: FlaskClient, alice: Any) -> None:
    raw = _with(event("push", tag="v1"), "timestamp", ...)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    deliver(client, raw)
    assert tag(app, "alice/app", "v1").pushed_at >= before - dt.timedelta(seconds=1)


def test_event_that_fails_to_apply_is_rejected_not_a_5xx(
    app: Flask, client: FlaskClient, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = repositories.record_pushes

    def record_pushes(session: Any, pushes: list[repositories.Push]) -> set[tuple[str, str]]:
        if any(push.tag == "boom" for push in pushes):
            raise RuntimeError("surprise")
        return real(session, pushes)

    monkeypatch.setattr(repositories, "record_pushes", record_pushes)
    summary = deliver(
        client,
        event("push", tag="v1", digest=D1),
        event("push", tag="boom", digest=D2),
        event("pull", tag="v1", digest=D1),
    )
    # The answer comes before the events are applied: the failure shows in the stored record.
    assert summary == {"accepted": 3, "duplicates": 0, "rejected": 0, "ignored": 0}
    assert [t.name for t in repository(app, "alice/app").tags] == ["v1"]
    assert tag(app, "alice/app", "v1").pull_count == 1
    (record,) = rejected(app)
    assert "surprise" in record.reason
    assert record.event_id is not None


# --- applying after the answer ------------------------------------------------------------------


def store_without_applying(app: Flask, *events_: dict[str, Any]) -> None:
    """What a web process that died right after answering leaves behind: pending events."""
    with app.app_context():
        session = app.appbuilder.session
        envelope = parse_envelope(json.dumps({"events": list(events_)}).encode(), V1)
        assert events.store(session, envelope).accepted == len(events_)
        session.remove()


def test_the_process_applies_stored_events_on_its_own(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    body = {"events": [event("push", tag="v1", digest=D1)]}
    assert post(client, body, wait_applied=False).status_code == 200
    stored = wait_until(lambda: tag(app, "alice/app", "v1"), message="never applied")
    assert stored.digest == D1
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 0


def test_a_stopping_process_applies_what_it_stored(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    body = {"events": [event("push", tag="v1", digest=D1)]}
    assert post(client, body, wait_applied=False).status_code == 200
    flush_at_exit(weakref.ref(app.extensions[EXTENSION].event_applier))  # as atexit calls it
    assert tag(app, "alice/app", "v1") is not None
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 0


def test_events_left_pending_are_applied_by_the_sweep(
    app: Flask, alice: Any, sent_tasks: list[tuple[str, tuple[Any, ...]]]
) -> None:
    store_without_applying(
        app, event("push", tag="v1", digest=D1), event("pull", tag="v1", digest=D1)
    )
    sweep_unenriched()  # too young: its own process may still be applying it
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 2

    session = app.appbuilder.session
    session.execute(update(RegistryEventRecord).values(received_at=T0))
    session.commit()
    sweep_unenriched()
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "accepted") == 2
    stored = tag(app, "alice/app", "v1")
    assert (stored.digest, stored.pull_count) == (D1, 1)
    assert sent_tasks == [(ENRICH, ([["alice/app", D1]],))]


def test_doctor_names_events_left_pending(app: Flask, alice: Any) -> None:
    store_without_applying(app, event("push", tag="v1", digest=D1))
    session = app.appbuilder.session

    def backlog() -> Any:
        return next(
            c for c in check_events(session, sweep_interval=60) if c.name == "event backlog"
        )

    assert backlog().ok  # just stored: its process is on it
    session.execute(update(RegistryEventRecord).values(received_at=T0))
    session.commit()
    assert not backlog().ok
    assert backlog().detail.startswith("1 events stored over 3 minutes ago")


def test_a_database_error_leaves_events_pending_not_rejected(
    app: Flask, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_without_applying(app, event("push", tag="v1", digest=D1))
    session = app.appbuilder.session

    def locked(*_args: Any) -> None:
        raise OperationalError(
            "UPDATE portus_tag", {}, sqlite3.OperationalError("database is locked")
        )

    monkeypatch.setattr(repositories, "record_pushes", locked)
    with pytest.raises(OperationalError):
        events.apply_pending(session)
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 1
    assert rejected(app) == []

    monkeypatch.undo()  # the database is back: the next pass applies it
    events.apply_pending(session)
    assert tag(app, "alice/app", "v1").digest == D1


def test_stored_times_are_written_as_sqlalchemy_writes_them(app: Flask, alice: Any) -> None:
    """The webhook stores through the driver; times must still compare with SQLAlchemy's."""
    store_without_applying(app, event("push", tag="v1", digest=D1, at=T0))
    session = app.appbuilder.session
    raw = session.execute(text("SELECT occurred_at FROM portus_registry_event")).scalar_one()
    assert raw == "2024-05-01 12:00:00.000000"
    stored = session.scalars(select(RegistryEventRecord)).one()
    assert stored.occurred_at == T0


def test_concurrent_appliers_apply_each_event_once(app: Flask, alice: Any) -> None:
    pulls = [event("pull", tag="v1", digest=D1) for _ in range(30)]
    store_without_applying(app, event("push", tag="v1", digest=D1), *pulls)
    applier = app.extensions[EXTENSION].event_applier

    def apply_in_own_session() -> None:
        with app.app_context():
            events.apply_pending(app.appbuilder.session, batch=7)
            app.appbuilder.session.remove()

    threads = [threading.Thread(target=apply_in_own_session) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applier.flush()
    assert tag(app, "alice/app", "v1").pull_count == 30
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "accepted") == 31


# --- the broker, the registry and the database ---------------------------------------------------


def test_broker_down_still_stores_the_tag(
    app: Flask, client: FlaskClient, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def send_task(name: str, *_args: Any, **_kwargs: Any) -> None:
        calls.append(name)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    summary = deliver(
        client, event("push", tag="v1", digest=D1), event("push", "alice/b", tag="v1", digest=D2)
    )
    assert summary["accepted"] == 2
    stored = tag(app, "alice/app", "v1")
    assert stored is not None and stored.digest == D1
    assert stored.enriched is False
    assert tag(app, "alice/b", "v1") is not None
    assert calls == [ENRICH]  # gave up on the broker after the first failure


def test_already_enriched_digest_is_not_enqueued_again(
    app: Flask, client: FlaskClient, alice: Any, sent_tasks: list[tuple[str, tuple[Any, ...]]]
) -> None:
    deliver(client, event("push", tag="v1", digest=D1))
    stored = tag(app, "alice/app", "v1")
    stored.enriched_digest = D1
    app.appbuilder.session.commit()
    sent_tasks.clear()
    deliver(client, event("push", tag="v1", digest=D1, at=T0 + dt.timedelta(seconds=1)))
    assert sent_tasks == []


def test_statements_do_not_grow_per_pull(app: Flask, client: FlaskClient, pushed: None) -> None:
    def statements_for(pulls: int) -> int:
        envelope = [event("pull", tag="v1", digest=D1) for _ in range(pulls)]
        with count_statements(app) as statements:
            deliver(client, *envelope)
        return len(statements)

    statements_for(1)  # warm up
    one, ten = statements_for(1), statements_for(10)
    assert tag(app, "alice/app", "v1").pull_count == 12
    assert one <= 12
    # One INSERT per event record at most; the counters are one UPDATE per tag and repository.
    assert ten - one <= 9, (one, ten)


@pytest.fixture
def silent_registry() -> Iterator[socket.socket]:
    """A listening socket as the 'registry': any connection to it lands in its backlog."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        yield listener


@pytest.fixture
def isolated_app(
    template_dir: Path, tmp_path: Path, silent_registry: socket.socket
) -> Iterator[Flask]:
    port = silent_registry.getsockname()[1]
    app = make_app(
        template_dir, tmp_path / "isolated", PORTUS_REGISTRY_URL=f"http://127.0.0.1:{port}"
    )
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def test_endpoint_never_calls_the_registry(
    isolated_app: Flask, silent_registry: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client(_self: Portus) -> None:
        raise AssertionError("the webhook asked for a registry client")

    monkeypatch.setattr(Portus, "registry_client", no_client)
    add_user(isolated_app, "alice")
    client = isolated_app.test_client()
    summary = deliver(
        client,
        *(
            event("push", tag=f"v{i}", digest=digest_of(str(i)), media_type=t)
            for i, t in enumerate(MANIFEST_TYPES)
        ),
        event("pull", tag="v0", digest=digest_of("0")),
        delete_event(digest=digest_of("1")),
    )
    assert summary["accepted"] == 6
    with pytest.raises(BlockingIOError):
        silent_registry.accept()
