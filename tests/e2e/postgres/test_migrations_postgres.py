"""portus_fab's schema migrations on a real PostgreSQL: models and history agree, a database
made before migrations keeps every row, FAB's and a host's tables stay as they were, and two
starters serialise on the advisory lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text

from portus_fab import migrations
from portus_fab.migrations import State
from tests.support.schema import ROWS, fab_tables, not_ours, pre_migration_database, rows
from tests.support.services import Postgres
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


@pytest.fixture
def engine(postgres: Postgres, request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = create_engine(postgres.create_database(request.node.name.lower()))
    yield engine
    engine.dispose()


def test_the_history_builds_what_the_models_say(engine: Engine) -> None:
    fab_tables(engine)
    assert migrations.upgrade(engine).state is State.UP_TO_DATE
    with engine.connect() as connection:
        assert migrations.differences(connection) == []


def test_a_database_made_before_migrations_upgrades_with_every_row(engine: Engine) -> None:
    pre_migration_database(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE host_note (id SERIAL PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO host_note (body) VALUES ('the host''s own')"))
    untouched = not_ours(engine)
    before = {name: rows(engine, name) for name in ROWS}
    assert migrations.upgrade(engine).state is State.UP_TO_DATE
    for name, kept in before.items():
        assert rows(engine, name, list(kept[0])) == kept, name
    assert not_ours(engine) == untouched
    with engine.connect() as connection:
        assert migrations.differences(connection) == []
    # Every revision's downgrade runs too, and leaves FAB's and the host's tables alone.
    migrations.downgrade(engine, "base")
    assert not_ours(engine) == untouched
    assert migrations.upgrade(engine).state is State.UP_TO_DATE


def _someone_waits_for_an_advisory_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return connection.execute(text(waiting)).scalar_one() > 0


def test_a_second_starter_waits_then_finds_nothing_to_do(engine: Engine) -> None:
    fab_tables(engine)
    outcome: list[Any] = []

    def second_worker() -> None:
        try:
            outcome.append(migrations.upgrade(engine))
        except Exception as error:  # noqa: BLE001 - the test reports it
            outcome.append(error)

    with engine.begin() as connection:  # the first worker, migrating under the lock
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrations.PG_LOCK_KEY}
        )
        worker = threading.Thread(target=second_worker)
        worker.start()
        wait_until(
            lambda: _someone_waits_for_an_advisory_lock(engine),
            message="the second worker waits for the lock",
        )
        command.upgrade(migrations.config(connection), "head")
    worker.join(timeout=30)
    assert [getattr(result, "state", result) for result in outcome] == [State.UP_TO_DATE]
