"""The webhook on SQLite: a locked database leaves events pending, and the times it stores through
the driver read back as SQLAlchemy's."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from portus_fab.catalog import events, repositories
from portus_fab.models import RegistryEventRecord
from tests.support.webhook import D1, T0, count, event, rejected, store_without_applying, tag


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
