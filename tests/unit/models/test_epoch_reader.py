"""The token endpoint's epoch read: one held connection per thread, which sees every commit at
once, holds no transaction open, and survives a connection that broke under it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from portus_fab.models import epoch
from portus_fab.models.epoch import current_epoch


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'epoch.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE portus_policy_epoch (id INTEGER PRIMARY KEY, value)"))
        connection.execute(text("INSERT INTO portus_policy_epoch VALUES (1, 7)"))
    yield engine
    engine.dispose()


def bump(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE portus_policy_epoch SET value = value + 1"))


def held(engine: Engine) -> object:
    return epoch._reader(engine)._local.held[1]


def test_every_commit_is_seen_at_the_next_read_on_the_same_connection(engine: Engine) -> None:
    assert current_epoch(engine) == 7
    connection = held(engine)
    for expected in (8, 9):
        bump(engine)
        assert current_epoch(engine) == expected
    assert held(engine) is connection
    # Between reads it holds no transaction (no snapshot, no lock a writer could wait on).
    assert not connection.dbapi_connection.in_transaction
    # And it is not one of the pool's: the pool keeps every slot for the rest of the request.
    assert engine.pool.checkedout() == 0


def test_a_connection_that_broke_is_replaced_at_the_next_read(engine: Engine) -> None:
    current_epoch(engine)
    broken = held(engine)
    broken.dbapi_connection.close()  # as a database restart leaves it
    bump(engine)
    assert current_epoch(engine) == 8
    assert held(engine) is not broken


def test_a_failure_on_a_new_connection_is_raised(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE portus_policy_epoch"))
    with pytest.raises(sqlite3.OperationalError):  # the DB-API's own, as before
        current_epoch(engine)
    assert getattr(epoch._reader(engine)._local, "held", None) is None


def test_each_thread_reads_on_its_own_connection(engine: Engine) -> None:
    current_epoch(engine)
    seen: list[object] = []

    def other_thread() -> None:
        current_epoch(engine)
        seen.append(held(engine))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=30)
    assert seen and seen[0] is not held(engine)


def test_a_forked_child_opens_its_own_and_leaves_the_parents_open(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    current_epoch(engine)
    parents = held(engine)
    real_pid = epoch.os.getpid()
    monkeypatch.setattr(epoch.os, "getpid", lambda: real_pid + 1)
    bump(engine)
    assert current_epoch(engine) == 8
    assert held(engine) is not parents
    # Still open: closing it would end the parent's session on the socket they share.
    assert parents.dbapi_connection.execute("SELECT 1").fetchone() == (1,)
