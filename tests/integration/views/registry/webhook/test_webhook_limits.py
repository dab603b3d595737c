"""Every stored field of a registry event at its limit and just over it, and event timestamps
outside the window the webhook trusts, on SQLite. The same scenarios run on PostgreSQL, which
enforces column lengths, in tests/e2e/postgres/test_webhook_limits_postgres.py."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support import event_limits
from tests.support.event_limits import FIELDS, TIMESTAMPS, Field, Timestamp


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.name)
def test_a_field_at_its_limit_is_stored_and_applied(app: Flask, field: Field) -> None:
    event_limits.at_the_limit(app, field, "at")


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.name)
def test_a_field_over_its_limit_rejects_only_its_event(app: Flask, field: Field) -> None:
    event_limits.over_the_limit(app, field, "over")


def test_a_sha512_digest(app: Flask) -> None:
    event_limits.sha512_digest(app, "sha512")


def test_every_field_at_its_limit_through_a_tags_life(app: Flask) -> None:
    event_limits.every_field_at_its_limit(app, "life")


def test_fields_nobody_stores_may_be_of_any_length(app: Flask) -> None:
    event_limits.fields_nobody_stores(app, "unstored")


def test_actions_over_the_limit_are_rejected(app: Flask) -> None:
    event_limits.actions(app, "actions")


def test_bodies_that_are_no_envelope_are_stored_bounded(app: Flask) -> None:
    event_limits.hostile_bodies(app)


@pytest.mark.parametrize("case", TIMESTAMPS, ids=lambda case: case.name)
def test_event_timestamps_are_bounded(app: Flask, case: Timestamp) -> None:
    event_limits.timestamp_bounded(app, case, "t")
