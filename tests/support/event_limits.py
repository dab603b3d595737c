"""Registry events with every stored field at its limit and just over it, and with timestamps
the webhook must not trust: the scenarios of
tests/integration/views/registry/webhook/test_webhook_limits.py (SQLite) and
tests/e2e/postgres/test_webhook_limits_postgres.py (PostgreSQL, which unlike SQLite enforces
column lengths, so that only there a value longer than its column fails the envelope).

Every scenario names its repositories after its own key, so that the PostgreSQL module can run
them all on one app and database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from portus_fab.catalog import repositories
from portus_fab.core import EXTENSION
from portus_fab.models import Activity, RegistryEventRecord, Repository, Tag
from portus_fab.registry import limits
from portus_fab.registry.manifests import DOCKER_MANIFEST, MANIFEST_MEDIA_TYPES
from portus_fab.registry.notifications import EARLIEST_EVENT_TIME, MAX_CLOCK_SKEW, RAW_LIMIT

URL = "/v2/webhooks/events"
V1 = "application/vnd.docker.distribution.events.v1+json"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def digest(seed: str, length: int = 71) -> str:
    """A valid digest of `length` characters: sha256 at 71, sha512 at 135, other lengths of an
    algorithm the registry does not know (which the grammar allows)."""
    hex_digits = hashlib.sha512(seed.encode()).hexdigest() * 4
    if length in (71, 135):
        return f"sha{(length - 7) * 4}:{hex_digits[: length - 7]}"
    return f"b3:{hex_digits[: length - 3]}"


def event(
    action: str,
    repository: str,
    *,
    tag: str | None = "v1",
    digest_: str | None = None,
    media_type: str | None = DOCKER_MANIFEST,
    actor: str = "alice",
    timestamp: str | None = None,
) -> dict[str, Any]:
    """An event shaped like registry 2.8.2's (skopeo as the client)."""
    target = {
        "mediaType": media_type,
        "size": 528,
        "digest": digest_ or digest(repository),
        "length": 528,
        "repository": repository,
        "url": f"http://registry.example.test:5000/v2/{repository}/manifests/{tag}",
        "tag": tag,
    }
    return {
        "id": str(uuid.uuid4()),
        "timestamp": timestamp or iso(dt.datetime.now(dt.UTC)),
        "action": action,
        "target": {key: value for key, value in target.items() if value is not None},
        "request": {
            "id": str(uuid.uuid4()),
            "addr": "192.0.2.7:51234",
            "host": "registry.example.test:5000",
            "method": {"push": "PUT", "pull": "GET", "delete": "DELETE"}.get(action, "GET"),
            "useragent": "skopeo/1.9.3",
        },
        "actor": {"name": actor},
        "source": {"addr": "registry:5000", "instanceID": str(uuid.uuid4())},
    }


def deliver(app: Flask, body: bytes | list[dict[str, Any]]) -> dict[str, int]:
    """POST an envelope as the registry does, insist on a 200, and apply what was stored."""
    data = body if isinstance(body, bytes) else json.dumps({"events": body}).encode()
    response = app.test_client().post(
        URL,
        data=data,
        headers={"Authorization": f"Bearer {app.config['PORTUS_WEBHOOK_SECRET']}"},
        content_type=V1,
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    app.extensions[EXTENSION].event_applier.flush()
    return response.get_json()


def record(session: Session, event_id: str) -> RegistryEventRecord:
    session.expire_all()
    stored = session.scalar(
        select(RegistryEventRecord).where(RegistryEventRecord.event_id == event_id)
    )
    assert stored is not None, f"event {event_id[:40]} not stored"
    return stored


def tag_of(session: Session, repository: str, name: str) -> Tag | None:
    return session.scalar(
        select(Tag).join(Repository).where(Repository.name == repository, Tag.name == name)
    )


def assert_stored_and_applied(session: Session, raw: dict[str, Any]) -> None:
    """Every column the event went to holds the event's own value, untruncated."""
    target = raw["target"]
    stored = record(session, raw["id"])
    assert (stored.status, stored.reason) == ("accepted", None)
    assert (
        stored.action,
        stored.repository,
        stored.tag,
        stored.digest,
        stored.media_type,
        stored.actor,
    ) == (
        raw["action"],
        target["repository"],
        target.get("tag"),
        target.get("digest"),
        target.get("mediaType"),
        raw["actor"]["name"],
    )
    activity = session.scalar(
        select(Activity)
        .where(Activity.repository == target["repository"], Activity.digest == target["digest"])
        .order_by(Activity.id.desc())
        .limit(1)
    )
    assert activity is not None
    assert activity.actor == raw["actor"]["name"]
    tag = tag_of(session, target["repository"], target.get("tag") or "v1")
    if raw["action"] == "push":
        assert tag is not None
        assert (tag.digest, tag.media_type, tag.pushed_by) == (
            target["digest"],
            target["mediaType"],
            raw["actor"]["name"],
        )
        assert (activity.kind, activity.tag) == ("push", target["tag"])
    else:  # a delete by digest of the tag pushed before it
        assert tag is None
        assert activity.kind == "delete"


@dataclass(frozen=True)
class Field:
    """A stored field of an event: its limit and how to send a value of some length in it."""

    name: str  # as a rejection names it
    limit: int
    make: Callable[[str, int], dict[str, Any]]  # (scenario key, length) -> the event

    def events(self, key: str, length: int) -> list[dict[str, Any]]:
        """The event with the field `length` characters long; a delete comes after the push of
        what it deletes, so that applying it changes something."""
        made = self.make(key, length)
        if made["action"] != "delete":
            return [made]
        target = made["target"]
        return [event("push", target["repository"], digest_=target["digest"]), made]


def _pad(key: str, filler: str, length: int) -> str:
    return (key + filler * length)[:length]


def _with_id(key: str, length: int) -> dict[str, Any]:
    raw = event("push", f"limits/{key}")
    raw["id"] = _pad(f"{key}-{uuid.uuid4()}-", "i", length)
    return raw


def _with_repository(key: str, length: int) -> dict[str, Any]:
    return event("push", _pad(f"{key}/", "r", length))


def _with_tag(key: str, length: int) -> dict[str, Any]:
    return event("push", f"limits/{key}", tag=_pad(key, "t", length))


def _with_digest(key: str, length: int) -> dict[str, Any]:
    return event("push", f"limits/{key}", digest_=digest(key, length))


def _with_media_type(key: str, length: int) -> dict[str, Any]:
    # Only a delete stores a media type other than a manifest's (pushes of others are ignored).
    media_type = _pad(f"application/{key}", "m", length)
    return event("delete", f"limits/{key}", tag=None, media_type=media_type)


def _with_actor(key: str, length: int) -> dict[str, Any]:
    return event("push", f"limits/{key}", actor=_pad(key, "a", length))


FIELDS = [
    Field("event id", limits.EVENT_ID_MAX, _with_id),
    Field("target.repository", limits.REPOSITORY_NAME_MAX, _with_repository),
    Field("target.tag", limits.TAG_MAX, _with_tag),
    Field("target.digest", limits.DIGEST_MAX, _with_digest),
    Field("target.mediaType", limits.MEDIA_TYPE_MAX, _with_media_type),
    Field("actor.name", limits.ACTOR_MAX, _with_actor),
]


def at_the_limit(app: Flask, field: Field, key: str) -> None:
    sent = field.events(key, field.limit)
    assert deliver(app, sent)["accepted"] == len(sent)
    assert_stored_and_applied(app.appbuilder.session, sent[-1])


def over_the_limit(app: Flask, field: Field, key: str) -> None:
    """Rejected with a reason naming the field; the rest of the envelope is stored and applied."""
    *before, oversized = field.events(key, field.limit + 1)
    good = event("push", f"limits/{key}-good")
    summary = deliver(app, [*before, oversized, good])
    assert (summary["accepted"], summary["rejected"]) == (len(before) + 1, 1)
    session = app.appbuilder.session
    session.expire_all()
    (rejected,) = session.scalars(
        select(RegistryEventRecord).where(
            RegistryEventRecord.status == "rejected",
            RegistryEventRecord.raw.contains(oversized["request"]["id"]),
        )
    )
    assert field.name in (rejected.reason or ""), rejected.reason
    assert str(field.limit) in (rejected.reason or ""), rejected.reason
    # An id too long to store is not stored: a rejection without an id is never a duplicate.
    assert rejected.event_id == (None if field.name == "event id" else oversized["id"])
    assert len(rejected.raw or "") <= RAW_LIMIT
    assert_stored_and_applied(session, good)


def every_field_at_its_limit(app: Flask, key: str) -> None:
    """One tag's whole life with every field at its limit at once: pushed, moved to another
    digest, pulled, described by the workers, deleted with its repository."""
    name = _pad(f"{key}/", "r", limits.REPOSITORY_NAME_MAX)
    tag = _pad(key, "t", limits.TAG_MAX)
    actor = _pad(key, "a", limits.ACTOR_MAX)
    first, second = (digest(f"{key}{n}", limits.DIGEST_MAX) for n in (1, 2))
    lifecycle = [
        event("push", name, tag=tag, digest_=first, actor=actor, media_type=media_type)
        for media_type in sorted(MANIFEST_MEDIA_TYPES)  # the longest may be any of them
    ]
    lifecycle += [
        event("push", name, tag=tag, digest_=second, actor=actor),
        event("pull", name, tag=tag, digest_=second, actor=actor),
        event("delete", name, tag=None, digest_=first, actor=actor, media_type=None),
    ]
    for raw in lifecycle:
        raw["id"] = _pad(f"{key}-{uuid.uuid4()}-", "i", limits.EVENT_ID_MAX)
    assert deliver(app, lifecycle)["accepted"] == len(lifecycle)
    session = app.appbuilder.session
    session.expire_all()
    stored = tag_of(session, name, tag)
    assert stored is not None
    assert (stored.digest, stored.pushed_by, stored.pull_count) == (second, actor, 1)
    moved = session.scalar(
        select(Activity).where(Activity.repository == name, Activity.kind == "tag moved")
    )
    assert (moved.previous_digest, moved.digest, moved.tag) == (first, second, tag)
    repositories.mark_failed(session, name, second, "x" * 10_000)
    session.commit()
    delete = event("delete", name, tag=None, digest_=second, actor=actor)
    delete["target"]["mediaType"] = _pad("application/", "m", limits.MEDIA_TYPE_MAX)
    assert deliver(app, [delete])["accepted"] == 1
    session.expire_all()
    assert session.scalar(select(Repository).where(Repository.name == name)) is None
    kinds = session.scalars(
        select(Activity.kind).where(Activity.repository == name, Activity.actor == actor)
    ).all()
    assert set(kinds) == {"push", "tag moved", "delete", "repository removed"}


def sha512_digest(app: Flask, key: str) -> None:
    raw = event("push", f"limits/{key}", digest_=digest(key, 135))
    assert deliver(app, [raw])["accepted"] == 1
    assert_stored_and_applied(app.appbuilder.session, raw)


def fields_nobody_stores(app: Flask, key: str) -> None:
    """The request, the source and the rest are not stored: any length is accepted."""
    raw = event("push", f"limits/{key}")
    huge = "h" * 100_000
    raw["request"] |= {"useragent": huge, "addr": huge, "host": huge, "method": huge}
    raw["source"] = {"addr": huge, "instanceID": huge}
    raw["target"]["url"] = huge
    assert deliver(app, [raw])["accepted"] == 1
    assert_stored_and_applied(app.appbuilder.session, raw)


def actions(app: Flask, key: str) -> None:
    """An unknown action up to the limit is ignored; a longer one is rejected."""
    unknown = event("push", f"limits/{key}")
    unknown["action"] = "x" * limits.ACTION_MAX
    too_long = event("push", f"limits/{key}")
    too_long["action"] = "x" * (limits.ACTION_MAX + 1)
    summary = deliver(app, [unknown, too_long])
    assert (summary["ignored"], summary["rejected"]) == (1, 1)
    assert record(app.appbuilder.session, too_long["id"]).reason == "event action is invalid"


def hostile_bodies(app: Flask) -> None:
    """Whole envelopes that are no envelope, NUL characters (which PostgreSQL cannot store in
    text) included: each is one rejection with a bounded raw body."""
    bodies = [
        b"\x00" * (RAW_LIMIT * 2),
        b'{"events": "\x00"}',
        b'{"events": [{"id": "nul\\u0000id", "action": "push"}]}',
        json.dumps({"events": [event("push", "limits/nul", tag="v\x001")]}).encode(),
        "é\x00".encode() * RAW_LIMIT,
    ]
    for body in bodies:
        summary = deliver(app, body)
        assert (summary["accepted"], summary["rejected"]) == (0, 1), body[:80]
    session = app.appbuilder.session
    session.expire_all()
    stored = session.scalars(
        select(RegistryEventRecord).where(RegistryEventRecord.status == "rejected")
    ).all()
    assert len(stored) >= len(bodies)
    assert all(len(row.raw or "") <= RAW_LIMIT and "\x00" not in (row.raw or "") for row in stored)


@dataclass(frozen=True)
class Timestamp:
    name: str
    sent: Callable[[dt.datetime], str]  # the event's timestamp, from the time it is sent
    trusted: bool  # stored as sent; otherwise the time the webhook received it is stored


TIMESTAMPS = [
    Timestamp("year 9999", lambda _: "9999-12-31T23:59:59.999999999Z", False),
    Timestamp("an hour ahead", lambda now: iso(now + dt.timedelta(hours=1)), False),
    Timestamp(
        "just beyond the clock skew allowed",
        lambda now: iso(now + MAX_CLOCK_SKEW + dt.timedelta(seconds=30)),
        False,
    ),
    Timestamp("a minute ahead", lambda now: iso(now + dt.timedelta(minutes=1)), True),
    Timestamp("an hour ago", lambda now: iso(now - dt.timedelta(hours=1)), True),
    Timestamp("years ago", lambda _: iso(EARLIEST_EVENT_TIME + dt.timedelta(days=1)), True),
    Timestamp(
        "before the earliest", lambda _: iso(EARLIEST_EVENT_TIME - dt.timedelta(days=1)), False
    ),
    Timestamp("1970", lambda _: "1970-01-01T00:00:00Z", False),
]


def timestamp_bounded(app: Flask, case: Timestamp, key: str) -> None:
    """Every time an event puts in the database, for a timestamp the webhook must (not) trust."""
    name = f"times/{key}"
    now = dt.datetime.now(dt.UTC)
    sent = case.sent(now)
    push = event("push", name, timestamp=sent)
    pull = event("pull", name, timestamp=sent)
    delete = event("delete", name, tag="gone", media_type=None, timestamp=sent)
    del delete["target"]["digest"]
    before = naive(dt.datetime.now(dt.UTC))
    assert deliver(app, [push, pull, delete])["accepted"] == 3
    after = naive(dt.datetime.now(dt.UTC))
    session = app.appbuilder.session
    records = [record(session, raw["id"]) for raw in (push, pull, delete)]
    tag = tag_of(session, name, "v1")
    assert tag is not None
    repository = tag.repository
    activity = session.scalar(
        select(Activity).where(Activity.repository == name, Activity.kind == "push")
    )
    stored = {
        "occurred_at": {row.occurred_at for row in records},
        "tag.pushed_at": {tag.pushed_at},
        "tag.last_pulled_at": {tag.last_pulled_at},
        "repository.last_pushed_at": {repository.last_pushed_at},
        "repository.last_pulled_at": {repository.last_pulled_at},
        "activity.at": {activity.at},
    }
    if case.trusted:
        expected = naive(dt.datetime.fromisoformat(sent))
        assert stored == {column: {expected} for column in stored}
        assert all(row.reason is None for row in records)
        return
    for column, values in stored.items():
        (value,) = values
        assert before <= value <= after, (column, value)
    for row in records:
        assert row.occurred_at == row.received_at
        assert "timestamp" in (row.reason or ""), row.reason
        assert sent[:19] in (row.reason or ""), row.reason
    # Nothing is pinned: the next push is the last one.
    later = dt.datetime.now(dt.UTC)
    assert deliver(app, [event("push", name, tag="v2", timestamp=iso(later))])["accepted"] == 1
    session.expire_all()
    assert repository.last_pushed_at == naive(later)
