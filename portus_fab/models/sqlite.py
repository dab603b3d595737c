"""What the embedded mode's SQLite needs so that one database file serves the web processes and
the workers at once.

SQLite allows one writer at a time. A writer that finds the database locked polls, sleeping 1, 2,
5, 10 ms and longer between tries; two writers that keep meeting each other (the webhook storing
events and the event applier) would each wait far longer than the other's transaction lasts.
`writing` queues them on a file lock beside the database instead: the kernel wakes the next
writer the moment the lock is free.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session


def tune(engine: Engine) -> None:
    """WAL lets readers go on while one writes; a busy timeout makes the writers that do not
    take `writing` wait instead of failing."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL this is still crash-safe; only the last commits may be lost on power loss,
        # and the registry redelivers unacknowledged events anyway.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener get the pragmas too


def _database_file(engine: Engine) -> str | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


@contextmanager
def writing(session: Session) -> Iterator[None]:
    """Hold the database's writer lock (SQLite files only; elsewhere a no-op) around a write
    transaction that should not poll for SQLite's own lock."""
    with writer_lock(session.get_bind()):
        yield


@contextmanager
def writer_lock(engine: Engine) -> Iterator[None]:
    """`writing` for a bare engine (schema migrations take it too)."""
    database = _database_file(engine)
    if database is None:
        yield
        return
    descriptor = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def checkpoint(session: Session) -> None:
    """Copy the write-ahead log into the database now. Otherwise whichever commit finds the log
    over 1,000 pages does it, usually a webhook request, whose answer then waits 10-20 ms."""
    if _database_file(session.get_bind()) is not None:
        session.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
