"""Pushes: every manifest type in every envelope type makes a repository and a tag, in the
right namespace; a tag pushed again moves and keeps its history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.models import Activity, Namespace, NamespaceKind, Tag, Visibility
from portus_fab.registry.manifests import BLOB_MEDIA_TYPE, OCI_MANIFEST
from portus_fab.tasks import ENRICH
from tests.support.webhook import (
    D1,
    D2,
    MANIFEST_TYPES,
    T0,
    V1,
    V2,
    count,
    deliver,
    digest_of,
    event,
    tag,
)


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
