"""The webhook limits scenarios of tests/support/event_limits.py on a real PostgreSQL, which,
unlike SQLite, refuses a value longer than its column: there a field the parser accepts but its
column cannot hold fails the whole envelope with a 500, which the registry retries forever.
All scenarios share one app and database; each names its repositories after its own key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from run import create_app
from tests.conftest import IsolatedClient, app_config
from tests.support import event_limits
from tests.support.event_limits import FIELDS, TIMESTAMPS, Field, Timestamp
from tests.support.services import Postgres

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with Postgres() as server:
        data_dir = tmp_path_factory.mktemp("pg-limits")
        url = server.create_database("webhook_limits")
        app = create_app(app_config(Path(data_dir), SQLALCHEMY_DATABASE_URI=url))
        app.test_client_class = IsolatedClient
        with app.app_context():
            yield app
            app.appbuilder.session.remove()
            app.extensions["sqlalchemy"].engine.dispose()


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.name)
def test_a_field_at_its_limit_is_stored_and_applied(pg_app: Flask, field: Field) -> None:
    event_limits.at_the_limit(pg_app, field, f"at{FIELDS.index(field)}")


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.name)
def test_a_field_over_its_limit_rejects_only_its_event(pg_app: Flask, field: Field) -> None:
    event_limits.over_the_limit(pg_app, field, f"over{FIELDS.index(field)}")


def test_a_sha512_digest(pg_app: Flask) -> None:
    event_limits.sha512_digest(pg_app, "sha512")


def test_every_field_at_its_limit_through_a_tags_life(pg_app: Flask) -> None:
    event_limits.every_field_at_its_limit(pg_app, "life")


def test_fields_nobody_stores_may_be_of_any_length(pg_app: Flask) -> None:
    event_limits.fields_nobody_stores(pg_app, "unstored")


def test_actions_over_the_limit_are_rejected(pg_app: Flask) -> None:
    event_limits.actions(pg_app, "actions")


def test_bodies_that_are_no_envelope_are_stored_bounded(pg_app: Flask) -> None:
    event_limits.hostile_bodies(pg_app)


@pytest.mark.parametrize("case", TIMESTAMPS, ids=lambda case: case.name)
def test_event_timestamps_are_bounded(pg_app: Flask, case: Timestamp) -> None:
    event_limits.timestamp_bounded(pg_app, case, f"t{TIMESTAMPS.index(case)}")
