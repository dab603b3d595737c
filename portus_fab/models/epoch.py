"""A counter bumped in the same transaction as any change that can alter a policy decision.

Caches of verified credentials and of decisions are keyed by it, so every process (each gunicorn
worker, each Celery worker) sees a change at its next request with one cheap query, without any
cross-process messaging.
"""

from __future__ import annotations

import os
import threading
import weakref

from sqlalchemy import BigInteger, Connection, Engine, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.pool import PoolProxiedConnection

from portus_fab.models.base import Model

EPOCH_ROW = 1


class PolicyEpoch(Model):
    __tablename__ = "portus_policy_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


_CURRENT = select(PolicyEpoch.value).where(PolicyEpoch.id == EPOCH_ROW)
# No bound parameters: portable across DB-API paramstyles.
_CURRENT_SQL = f"SELECT value FROM {PolicyEpoch.__tablename__} WHERE id = {EPOCH_ROW}"


def current_epoch(bind: Session | Engine) -> int:
    """Read on a connection of its own by the token endpoint, on every request: a returning
    client's request then needs no ORM session and no pool checkout at all."""
    if isinstance(bind, Engine):
        return _reader(bind).read()
    return bind.execute(_CURRENT).scalar_one()


class _EpochReader:
    """One DB-API connection per thread, held for the epoch read alone, in autocommit so that no
    transaction stays open between reads (each read sees the latest commit, on SQLite and
    PostgreSQL alike). Checking a pooled connection out and resetting it on return cost more
    than the read itself. A held connection that fails (the database restarted) is invalidated
    and the read tried once more on a new one; a new one that fails raises."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)  # the reader must not keep its engine alive
        self._local = threading.local()

    def read(self) -> int:
        held = getattr(self._local, "held", None)
        if held is not None:
            if held[0] == os.getpid():
                try:
                    return self._select(held[1])
                except Exception:
                    self._local.held = None
                    held[1].invalidate()
            else:
                # A forked child neither uses its parent's connection nor closes it (closing
                # would end the parent's PostgreSQL session on the socket they share).
                _INHERITED.append(held)
        engine = self._engine()
        assert engine is not None  # called with the engine, by current_epoch
        connection = engine.raw_connection()
        connection.detach()  # out of the pool: held for good, it must not take a pool slot
        engine.dialect.set_isolation_level(connection.dbapi_connection, "AUTOCOMMIT")
        try:
            value = self._select(connection)
        except Exception:
            connection.invalidate()
            raise
        self._local.held = (os.getpid(), connection)
        return value

    @staticmethod
    def _select(connection: PoolProxiedConnection) -> int:
        cursor = connection.cursor()
        cursor.execute(_CURRENT_SQL)
        (value,) = cursor.fetchone()
        cursor.close()
        return value


_INHERITED: list[tuple[int, PoolProxiedConnection]] = []
_READERS: weakref.WeakKeyDictionary[Engine, _EpochReader] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def _reader(engine: Engine) -> _EpochReader:
    reader = _READERS.get(engine)
    if reader is None:
        with _READERS_LOCK:
            reader = _READERS.setdefault(engine, _EpochReader(engine))
    return reader


# Engines whose schema this process has prepared (portus_fab.migrations.prepare_schema). FAB
# writes its roles and permissions before the add-on's start-up runs: on a database that does not
# hold our tables yet, a bump would fail FAB's write, and no cache exists yet to invalidate.
_READY: weakref.WeakSet[Engine] = weakref.WeakSet()
_BUMP = update(PolicyEpoch).where(PolicyEpoch.id == EPOCH_ROW).values(value=PolicyEpoch.value + 1)


def mark_schema_ready(engine: Engine) -> None:
    _READY.add(engine)


def bump_epoch(bind: Session | Connection) -> None:
    """Invalidate every process's cached credentials and decisions, in the caller's transaction."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind.engine
    if engine in _READY:
        bind.execute(_BUMP)
