"""The webhook's bearer secret: anything but the exact secret is 401 and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.models import Activity, RegistryEventRecord, Repository
from tests.support.webhook import SECRET, count, event, post, tag


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
