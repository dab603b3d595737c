"""Applying stored registry events moments after the webhook answers, in each web process.

The registry waits for each answer before it sends the next envelope, so the webhook only stores
events (`events.store`) and wakes this applier. A daemon thread then applies what has
gathered, several envelopes at a time (far fewer statements per event than one by one), and
publishes the digests to enrich: one Celery message costs about as much as storing a whole
envelope.

Nothing is lost if the process dies first: its events stay pending in the database and the
periodic sweep applies them; tags left unenriched are enqueued by the sweep too.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from flask import Flask

from portus_fab.catalog import events
from portus_fab.models import sqlite

log = logging.getLogger(__name__)

# Long enough for a busy registry's next envelopes to join a pass (a transaction costs about
# 5 ms whether it applies 5 events or 50), short against "shows up within seconds".
LINGER_SECONDS = 0.1
# A pass applies in transactions of PASS_BATCH events with pauses between them: on SQLite each
# one holds the writer lock that the webhook's next store waits for (models/sqlite.py). These
# three values did best in bench/webhook_bench.py among lingers of 0.1-0.5 s and batches of 25-100.
PASS_BATCH = 50
PAUSE_SECONDS = 0.003
# After a failed pass (the database locked or unreachable), the next try.
RETRY_SECONDS = 5.0
# An idle thread ends (a new one starts on the next wake), so an app that is thrown away, as in
# tests, does not keep one.
IDLE_SECONDS = 30.0


# Hands (repository, digest) pairs to the enrich workers; returns how many it handed over. The
# manager passes the Celery publisher in, so this domain never imports the task surface.
PublishEnrich = Callable[[Iterable[tuple[str, str]]], int]


class EventApplier:
    def __init__(self, app: Flask, publish_enrich: PublishEnrich) -> None:
        self._app = app
        self._publish_enrich = publish_enrich
        self._lock = threading.Lock()  # guards _thread and _thread_pid
        self._applying = threading.Lock()  # one pass at a time: flush() waits for a running one
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._woken = False  # stored since the last pass began: the exit has work to do
        atexit.register(flush_at_exit, weakref.ref(self))  # weak: the app may go first

    def wake(self) -> None:
        """Something was stored: apply it soon."""
        self._woken = True
        with self._lock:
            # After a fork the child has this object but not the thread.
            if self._thread is None or self._thread_pid != os.getpid():
                self._thread = threading.Thread(
                    target=self._run, name="portus-event-applier", daemon=True
                )
                self._thread_pid = os.getpid()
                self._thread.start()
            # Under the lock: an idle thread checks the event under it before it ends.
            self._wake.set()

    def flush(self, *, only_if_woken: bool = False) -> int:
        """Apply every pending event now, after any pass already running; return how many
        digests were handed to the enrich workers. `only_if_woken`: not if a pass has begun
        since the last wake (it took everything stored before it)."""
        with self._applying, self._app.app_context():
            if only_if_woken and not self._woken:
                return 0
            self._woken = False
            session = self._app.appbuilder.session
            try:
                to_enrich = events.apply_pending(
                    session, batch=PASS_BATCH, between_batches=lambda: time.sleep(PAUSE_SECONDS)
                )
                sqlite.checkpoint(session)
            finally:
                session.remove()
            return self._publish_enrich(to_enrich) if to_enrich else 0

    def _run(self) -> None:
        while True:
            if not self._wake.wait(IDLE_SECONDS):
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
                continue
            time.sleep(LINGER_SECONDS)
            self._wake.clear()
            try:
                self.flush(only_if_woken=True)
            except Exception:  # noqa: BLE001 - the events stay pending: try again in a while
                log.exception("applying stored registry events failed; they stay pending")
                self._woken = True
                time.sleep(RETRY_SECONDS)
                self._wake.set()


def flush_at_exit(reference: weakref.ref[EventApplier]) -> None:
    """Apply what this process stored and has not applied yet (a stopping web server)."""
    applier = reference()
    if applier is None or not applier._woken:
        return  # nothing stored here since the last pass
    try:
        applier.flush()
    except Exception:  # noqa: BLE001 - exiting anyway; the sweep applies what is left
        log.exception("applying stored registry events at exit failed; they stay pending")
