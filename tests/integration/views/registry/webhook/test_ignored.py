"""What the webhook ignores: blob pushes and pulls, mounts and actions it does not know."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.models import RegistryEventRecord, Repository
from portus_fab.registry.manifests import BLOB_MEDIA_TYPE
from tests.support.webhook import D1, count, deliver, digest_of, event, repository


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


@pytest.mark.parametrize("action", ["mount", "scan", "patch"])
def test_mount_and_unknown_actions_are_ignored(
    app: Flask, client: FlaskClient, alice: Any, action: str
) -> None:
    summary = deliver(client, event(action, tag="v1", digest=D1))
    assert summary == {"accepted": 0, "duplicates": 0, "rejected": 0, "ignored": 1}
    assert count(app, RegistryEventRecord) == 0
    assert count(app, Repository) == 0
