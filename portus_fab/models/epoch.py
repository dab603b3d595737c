"""A counter bumped in the same transaction as any change that can alter a policy decision.

Caches of verified credentials and of decisions are keyed by it, so every process (each gunicorn
worker, each Celery worker) sees a change at its next request with one cheap query, without any
cross-process messaging.
"""

from __future__ import annotations

import weakref

from sqlalchemy import BigInteger, Connection, Engine, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

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
    """Read on a bare engine connection by the token endpoint: a returning client's request then
    needs no ORM session at all."""
    if isinstance(bind, Engine):
        # A pooled DB-API connection: the SQLAlchemy layers add nothing to this one-value read.
        connection = bind.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(_CURRENT_SQL)
            (value,) = cursor.fetchone()
            cursor.close()
            return value
        finally:
            connection.close()
    return bind.execute(_CURRENT).scalar_one()


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
