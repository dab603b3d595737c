"""The webhook and the services around it: a broker that is down loses no tag, an enriched
digest is not enqueued again, and the endpoint never calls the registry."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.core import Portus
from portus_fab.tasks import ENRICH
from tests.conftest import add_user, make_app
from tests.support.webhook import (
    D1,
    D2,
    MANIFEST_TYPES,
    T0,
    delete_event,
    deliver,
    digest_of,
    event,
    tag,
)


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
