"""Fixtures of the webhook tests: a user, the tasks handed to Celery, and pushed tags."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import add_user
from tests.support.webhook import D1, D2, D3, deliver, event


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


@pytest.fixture
def pushed(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(
        client,
        event("push", tag="v1", digest=D1),
        event("push", tag="v2", digest=D2),
        event("push", "alice/other", tag="v1", digest=D3),
    )
