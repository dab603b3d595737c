"""Pulls count on the tag and the repository (not the internal identity's), never move the last
pull back, and cost no statements per pull."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient

from portus_fab.access.policy import INTERNAL_IDENTITY
from portus_fab.models import RegistryEventRecord, Repository
from portus_fab.registry.manifests import BLOB_MEDIA_TYPE
from tests.support.statements import count_statements
from tests.support.webhook import D1, D2, D3, T0, count, deliver, digest_of, event, repository, tag


def test_pull_by_tag_counts_on_tag_and_repository(
    app: Flask, client: FlaskClient, pushed: None
) -> None:
    at = T0 + dt.timedelta(hours=1)
    deliver(client, event("pull", tag="v1", digest=D1, at=at))
    v1 = tag(app, "alice/app", "v1")
    assert (v1.pull_count, v1.last_pulled_at) == (1, at)
    repo = repository(app, "alice/app")
    assert (repo.pull_count, repo.last_pulled_at) == (1, at)
    v2 = tag(app, "alice/app", "v2")
    assert (v2.pull_count, v2.last_pulled_at) == (0, None)
    assert repository(app, "alice/other").pull_count == 0


def test_many_pulls_in_one_envelope(app: Flask, client: FlaskClient, pushed: None) -> None:
    times = [T0 + dt.timedelta(minutes=m) for m in (7, 3, 9, 1)]
    summary = deliver(
        client,
        *(event("pull", tag="v1", digest=D1, at=at) for at in times),
        event("pull", tag="v2", digest=D2, at=T0 + dt.timedelta(minutes=2)),
        event("pull", digest=D2, at=T0 + dt.timedelta(minutes=4)),  # by digest: repository only
        event("pull", "alice/other", tag="v1", digest=D3, at=T0),
        event("pull", digest=digest_of("blob"), media_type=BLOB_MEDIA_TYPE),  # ignored
    )
    assert summary == {"accepted": 7, "duplicates": 0, "rejected": 0, "ignored": 1}
    v1, v2 = tag(app, "alice/app", "v1"), tag(app, "alice/app", "v2")
    assert (v1.pull_count, v1.last_pulled_at) == (4, max(times))
    assert (v2.pull_count, v2.last_pulled_at) == (1, T0 + dt.timedelta(minutes=2))
    repo = repository(app, "alice/app")
    assert (repo.pull_count, repo.last_pulled_at) == (6, max(times))
    assert repository(app, "alice/other").pull_count == 1


def test_late_pull_never_moves_last_pulled_back(
    app: Flask, client: FlaskClient, pushed: None
) -> None:
    late = T0 + dt.timedelta(hours=2)
    deliver(client, event("pull", tag="v1", at=late))
    deliver(client, event("pull", tag="v1", at=T0 + dt.timedelta(hours=1)))
    v1 = tag(app, "alice/app", "v1")
    assert (v1.pull_count, v1.last_pulled_at) == (2, late)
    assert repository(app, "alice/app").last_pulled_at == late


def test_internal_pulls_are_not_counted(app: Flask, client: FlaskClient, pushed: None) -> None:
    summary = deliver(client, event("pull", tag="v1", actor=INTERNAL_IDENTITY))
    assert summary["accepted"] == 1
    assert count(app, RegistryEventRecord, RegistryEventRecord.actor == INTERNAL_IDENTITY) == 1
    assert tag(app, "alice/app", "v1").pull_count == 0
    assert repository(app, "alice/app").pull_count == 0


def test_anonymous_pull_is_counted(app: Flask, client: FlaskClient, pushed: None) -> None:
    deliver(client, event("pull", tag="v1", actor=None))
    assert tag(app, "alice/app", "v1").pull_count == 1


def test_pull_of_unknown_repository_is_harmless(app: Flask, client: FlaskClient) -> None:
    summary = deliver(client, event("pull", "nobody/app", tag="v1"))
    assert summary["accepted"] == 1
    assert count(app, Repository) == 0


def test_statements_do_not_grow_per_pull(app: Flask, client: FlaskClient, pushed: None) -> None:
    def statements_for(pulls: int) -> int:
        envelope = [event("pull", tag="v1", digest=D1) for _ in range(pulls)]
        with count_statements(app) as statements:
            deliver(client, *envelope)
        return len(statements)

    statements_for(1)  # warm up
    one, ten = statements_for(1), statements_for(10)
    assert tag(app, "alice/app", "v1").pull_count == 12
    assert one <= 12
    # One INSERT per event record at most; the counters are one UPDATE per tag and repository.
    assert ten - one <= 9, (one, ten)
