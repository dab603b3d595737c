"""What `GET /health` answers from: the self-checks of ops/diagnostics, kept for
PORTUS_HEALTH_CACHE_TTL seconds and refreshed in a background thread, one refresh at a time per
process.

Anyone may call /health, and a web worker held by a call waiting on a hung registry is a worker
that no token request can have. So a call never runs the checks itself: it answers from the last
ones, and only a process's first calls wait for a result, at most FIRST_ANSWER_WAIT.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app

from portus_fab.core import portus
from portus_fab.ops.diagnostics import Check, run_checks

log = logging.getLogger(__name__)

EXTENSION = "portus_fab_health"
STALLED = "self-checks"
# Failing these means portus_fab cannot serve tokens; the others degrade the front end only.
# The directory is not one: down, it fails new sign-ins only, while cached credentials, access
# tokens and robots still get tokens, and a balancer taking every process out would fail those.
ESSENTIAL = frozenset({"database", "registry", "registry trusts our tokens", STALLED})
# How many health timeouts an admin's fresh check may take: registry, broker, database and
# directory.
FRESH_WAIT_TIMEOUTS = 4
# Enough for a registry and broker that answer to give a process's first caller a real answer;
# short enough that a hung one costs each web worker this, once, and not a token request more.
FIRST_ANSWER_WAIT = 0.25


@dataclass(frozen=True, slots=True)
class Health:
    checks: tuple[Check, ...]
    checked_at: float  # time.monotonic() when these checks finished

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks if check.name in ESSENTIAL)


class HealthMonitor:
    """The last checks of one process, and the one refresh of them that may be in flight."""

    def __init__(self, app: Flask, timeout: float, ttl: float) -> None:
        self._app = app
        self._timeout = timeout
        self._ttl = ttl
        self._lock = threading.Lock()
        self._last: Health | None = None
        self._done: threading.Event | None = None  # set when the refresh in flight ends
        self._started_at = 0.0

    def current(self, *, fresh: bool = False) -> Health:
        """The last checks, refreshed in the background once older than the TTL. `fresh`
        (admins only: it holds the caller while the checks run) waits for a new result."""
        with self._lock:
            last = self._last
            if not fresh and last is not None and time.monotonic() - last.checked_at < self._ttl:
                return last
            done = self._refresh_in_background()
            started_at = self._started_at
        if fresh:
            done.wait(FRESH_WAIT_TIMEOUTS * self._timeout)
        elif last is None:
            done.wait(max(0.0, started_at + FIRST_ANSWER_WAIT - time.monotonic()))
        with self._lock:
            last = self._last
            running_for = time.monotonic() - self._started_at
            if last is not None and (self._done is None or running_for < self._timeout):
                return last
            # No result yet, or one older than the refresh that runs past its timeout: whatever
            # the checks wait on is what is failing.
            stalled = f"still running after {running_for:.1f} s: the registry, the broker or the "
            stalled += "database is slow to answer"
            return Health((Check(STALLED, False, stalled),), time.monotonic())

    def _refresh_in_background(self) -> threading.Event:
        """The refresh in flight, started now if there is none. Call with the lock held."""
        if self._done is None:
            self._done = threading.Event()
            self._started_at = time.monotonic()
            threading.Thread(
                target=self._refresh, args=(self._done,), name="portus-health", daemon=True
            ).start()
        return self._done

    def _refresh(self, done: threading.Event) -> None:
        try:
            with self._app.app_context():
                checks = tuple(run_checks(portus(), timeout=self._timeout))
        except Exception as error:
            log.exception("the self-checks failed")
            checks = (Check(STALLED, False, f"the self-checks failed: {error}"),)
        with self._lock:
            self._last = Health(checks, time.monotonic())
            self._done = None
        done.set()


def health(*, fresh: bool = False) -> Health:
    """The current app's health, as its monitor last saw it (see HealthMonitor.current)."""
    app = current_app._get_current_object()
    monitor = app.extensions.get(EXTENSION)
    if monitor is None:
        settings = portus().settings
        created = HealthMonitor(app, settings.health_timeout, settings.health_cache_ttl)
        # Two first calls at once may both create one; setdefault keeps a single monitor.
        monitor = app.extensions.setdefault(EXTENSION, created)
    return monitor.current(fresh=fresh)
