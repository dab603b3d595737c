"""Registry events shaped like registry 2.8's, posted to `POST /v2/webhooks/events` through the
Flask test client, and what the webhook stored, read back: the helpers of the tests in
tests/integration/views/registry/webhook/."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portus_fab.catalog import events
from portus_fab.core import EXTENSION
from portus_fab.models import RegistryEventRecord, Repository, Tag
from portus_fab.registry.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from portus_fab.registry.notifications import parse_envelope

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


def store_without_applying(app: Flask, *events_: dict[str, Any]) -> None:
    """What a web process that died right after answering leaves behind: pending events."""
    with app.app_context():
        session = app.appbuilder.session
        envelope = parse_envelope(json.dumps({"events": list(events_)}).encode(), V1)
        assert events.store(session, envelope).accepted == len(events_)
        session.remove()
