"""Last use of a stored credential (access token, robot, refresh token) without a write per pull.

Each process writes a credential's last use at most once per interval (a `Throttle` in memory),
and the UPDATE itself only changes a row last written over an interval ago, so several processes
together still change it about once per interval. It runs on its own connection, outside the
request's session: a Core statement, so it bumps no policy epoch and flushes no cache, and a
returning client's token request stays at one query (the epoch) nearly all the time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from sqlalchemy import Engine, Table, or_, update

from portus_fab.models.namespaces import utcnow


class Throttle:
    """Per-process memory of when something was last done per key, so that it is done at most
    once per `interval` seconds per key. Bounded: old keys are forgotten."""

    MAX_KEYS = 10_000

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

    def due(self, key: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            if len(self._last) >= self.MAX_KEYS:
                horizon = now - self._interval
                self._last = {k: t for k, t in self._last.items() if t >= horizon}
            self._last[key] = now
            return True


def write_last_use(
    engine: Engine, table: Table, row_id: int, interval: float, **extra: Any
) -> None:
    """Set `last_used_at` (and `extra` columns) unless another process did so within `interval`."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=interval)
    with engine.begin() as connection:
        connection.execute(
            update(table)
            .where(
                table.c.id == row_id,
                or_(table.c.last_used_at.is_(None), table.c.last_used_at < stale),
            )
            .values(last_used_at=now, **extra)
        )
