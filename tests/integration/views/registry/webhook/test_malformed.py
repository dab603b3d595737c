"""Malformed input: an unusable body or a bad event is recorded as rejected, the rest of the
envelope applied."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.models import RegistryEventRecord, Repository
from portus_fab.registry.manifests import BLOB_MEDIA_TYPE
from tests.support.webhook import (
    D1,
    D2,
    D3,
    count,
    delete_event,
    deliver,
    digest_of,
    event,
    post,
    rejected,
    repository,
    tag,
)


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
