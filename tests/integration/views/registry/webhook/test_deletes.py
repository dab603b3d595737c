"""Deletes by digest or by tag remove the tags they name, and a repository left without tags."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.models import Activity, Tag
from tests.support.webhook import D1, D2, D3, T0, count, delete_event, deliver, event, repository


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
