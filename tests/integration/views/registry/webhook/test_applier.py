"""Applying after the answer: the process applies what it stored (also when it stops), the sweep
what a dead process left, each event once, and an event that fails to apply is rejected."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from portus_fab.catalog import events, repositories
from portus_fab.catalog.applier import flush_at_exit
from portus_fab.core import EXTENSION
from portus_fab.models import RegistryEventRecord
from portus_fab.ops.diagnostics import check_events
from portus_fab.tasks import ENRICH
from portus_fab.tasks.catalog import sweep_unenriched
from tests.support.wait import wait_until
from tests.support.webhook import (
    D1,
    D2,
    T0,
    count,
    deliver,
    event,
    post,
    rejected,
    repository,
    store_without_applying,
    tag,
)


def test_event_that_fails_to_apply_is_rejected_not_a_5xx(
    app: Flask, client: FlaskClient, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = repositories.record_pushes

    def record_pushes(session: Any, pushes: list[repositories.Push]) -> set[tuple[str, str]]:
        if any(push.tag == "boom" for push in pushes):
            raise RuntimeError("surprise")
        return real(session, pushes)

    monkeypatch.setattr(repositories, "record_pushes", record_pushes)
    summary = deliver(
        client,
        event("push", tag="v1", digest=D1),
        event("push", tag="boom", digest=D2),
        event("pull", tag="v1", digest=D1),
    )
    # The answer comes before the events are applied: the failure shows in the stored record.
    assert summary == {"accepted": 3, "duplicates": 0, "rejected": 0, "ignored": 0}
    assert [t.name for t in repository(app, "alice/app").tags] == ["v1"]
    assert tag(app, "alice/app", "v1").pull_count == 1
    (record,) = rejected(app)
    assert "surprise" in record.reason
    assert record.event_id is not None


def test_the_process_applies_stored_events_on_its_own(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    body = {"events": [event("push", tag="v1", digest=D1)]}
    assert post(client, body, wait_applied=False).status_code == 200
    stored = wait_until(lambda: tag(app, "alice/app", "v1"), message="never applied")
    assert stored.digest == D1
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 0


def test_a_stopping_process_applies_what_it_stored(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    body = {"events": [event("push", tag="v1", digest=D1)]}
    assert post(client, body, wait_applied=False).status_code == 200
    flush_at_exit(weakref.ref(app.extensions[EXTENSION].event_applier))  # as atexit calls it
    assert tag(app, "alice/app", "v1") is not None
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 0


def test_events_left_pending_are_applied_by_the_sweep(
    app: Flask, alice: Any, sent_tasks: list[tuple[str, tuple[Any, ...]]]
) -> None:
    store_without_applying(
        app, event("push", tag="v1", digest=D1), event("pull", tag="v1", digest=D1)
    )
    sweep_unenriched()  # too young: its own process may still be applying it
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "pending") == 2

    session = app.appbuilder.session
    session.execute(update(RegistryEventRecord).values(received_at=T0))
    session.commit()
    sweep_unenriched()
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "accepted") == 2
    stored = tag(app, "alice/app", "v1")
    assert (stored.digest, stored.pull_count) == (D1, 1)
    assert sent_tasks == [(ENRICH, ([["alice/app", D1]],))]


def test_doctor_names_events_left_pending(app: Flask, alice: Any) -> None:
    store_without_applying(app, event("push", tag="v1", digest=D1))
    session = app.appbuilder.session

    def backlog() -> Any:
        return next(
            c for c in check_events(session, sweep_interval=60) if c.name == "event backlog"
        )

    assert backlog().ok  # just stored: its process is on it
    session.execute(update(RegistryEventRecord).values(received_at=T0))
    session.commit()
    assert not backlog().ok
    assert backlog().detail.startswith("1 events stored over 3 minutes ago")


def test_concurrent_appliers_apply_each_event_once(app: Flask, alice: Any) -> None:
    pulls = [event("pull", tag="v1", digest=D1) for _ in range(30)]
    store_without_applying(app, event("push", tag="v1", digest=D1), *pulls)
    applier = app.extensions[EXTENSION].event_applier

    def apply_in_own_session() -> None:
        with app.app_context():
            events.apply_pending(app.appbuilder.session, batch=7)
            app.appbuilder.session.remove()

    threads = [threading.Thread(target=apply_in_own_session) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applier.flush()
    assert tag(app, "alice/app", "v1").pull_count == 30
    assert count(app, RegistryEventRecord, RegistryEventRecord.status == "accepted") == 31
