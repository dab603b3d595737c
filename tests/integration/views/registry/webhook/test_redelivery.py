"""The registry redelivers: an event id seen before changes nothing, in a later envelope or in
the same one."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from portus_fab.models import Activity, RegistryEventRecord, Tag
from tests.support.webhook import (
    D1,
    D2,
    D3,
    T0,
    count,
    delete_event,
    deliver,
    event,
    post,
    repository,
    tag,
)


def test_redelivered_envelope_is_a_no_op(app: Flask, client: FlaskClient, alice: Any) -> None:
    deliver(client, event("push", tag="v1", digest=D1))
    envelope = {
        "events": [
            event("push", tag="v2", digest=D2),
            event("pull", tag="v1", digest=D1),
            event("pull", tag="v1", digest=D1),
            delete_event(digest=D3),
            {"id": str(uuid.uuid4()), "action": "push"},  # rejected, with an id
        ]
    }
    first = post(client, envelope)
    assert first.status_code == 200
    assert first.get_json() == {"accepted": 4, "duplicates": 0, "rejected": 1, "ignored": 0}
    snapshot = (
        count(app, RegistryEventRecord),
        count(app, Activity),
        count(app, Tag),
        tag(app, "alice/app", "v1").pull_count,
        repository(app, "alice/app").pull_count,
    )
    assert snapshot[3:] == (2, 2)

    again = post(client, envelope)
    assert again.status_code == 200
    assert again.get_json() == {"accepted": 0, "duplicates": 5, "rejected": 0, "ignored": 0}
    assert (
        count(app, RegistryEventRecord),
        count(app, Activity),
        count(app, Tag),
        tag(app, "alice/app", "v1").pull_count,
        repository(app, "alice/app").pull_count,
    ) == snapshot


def test_same_id_twice_in_one_envelope_counts_once(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    deliver(client, event("push", tag="v1"))
    pull = event("pull", tag="v1")
    summary = deliver(client, pull, pull)
    assert summary["accepted"] == 1
    assert tag(app, "alice/app", "v1").pull_count == 1


def test_redelivered_push_does_not_move_tag_back(
    app: Flask, client: FlaskClient, alice: Any
) -> None:
    old = event("push", tag="v1", digest=D1, at=T0)
    deliver(client, old)
    deliver(client, event("push", tag="v1", digest=D2, at=T0 + dt.timedelta(seconds=1)))
    summary = deliver(client, old)
    assert summary["duplicates"] == 1
    assert tag(app, "alice/app", "v1").digest == D2
