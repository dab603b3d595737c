"""Celery, wired the way Flask documents it: tasks run inside the app context, are defined with
`shared_task` and take names, never ORM objects. Tasks are thin; the work is in plain functions
(portus_fab.catalog.enrichment, portus_fab.catalog.sync) that tests call directly."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app

log = logging.getLogger(__name__)

ENRICH = "portus_fab.enrich"
SWEEP = "portus_fab.sweep"
SYNC = "portus_fab.sync"


def celery_init_app(app: Flask, broker_url: str, sweep_interval: int, sync_interval: int) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    schedule: dict[str, Any] = {"sweep": {"task": SWEEP, "schedule": float(sweep_interval)}}
    if sync_interval > 0:
        schedule["sync"] = {"task": SYNC, "schedule": float(sync_interval)}
    celery_app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        # A worker that dies mid-task leaves the message to another worker (tasks are idempotent).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="portus_fab",
        beat_schedule=schedule,
        beat_schedule_filename=str(app.extensions["portus_fab"].settings.data_dir / "beat"),
    )
    app.extensions["celery"] = celery_app
    from portus_fab.tasks import catalog  # noqa: F401 - registers the shared tasks

    return celery_app


def _send(name: str, *args: Any) -> bool:
    """Publish without retrying: if the broker is down the data is already stored and the
    periodic sweep enqueues it again later."""
    try:
        current_app.extensions["celery"].send_task(name, args=args, retry=False)
        return True
    except Exception as error:  # noqa: BLE001 - kombu raises many kinds; none may fail a request
        log.warning("could not enqueue %s (the sweep will retry): %s", name, error)
        return False


# Digests per enrich message: few messages per pass of the event applier (each costs about 2 ms
# to publish), and a sweep of hundreds of digests still spreads over several workers.
ENRICH_BATCH = 20


def enqueue_enrich(pairs: Iterable[tuple[str, str]]) -> int:
    """Enqueue the (repository, digest) pairs in messages of up to ENRICH_BATCH; returns how many
    pairs were enqueued."""
    ordered = [[repository, digest] for repository, digest in sorted(pairs)]
    sent = 0
    for start in range(0, len(ordered), ENRICH_BATCH):
        batch = ordered[start : start + ENRICH_BATCH]
        if not _send(ENRICH, batch):
            break  # the broker is down: do not wait on it once per batch
        sent += len(batch)
    return sent
