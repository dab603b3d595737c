"""The tasks: thin wrappers that fetch the app's collaborators and call plain functions."""

from __future__ import annotations

import datetime as dt

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from portus_fab.audit.origin import REGISTRY, acting
from portus_fab.catalog import enrichment, events, sync
from portus_fab.core import portus
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction
from portus_fab.registry.errors import RegistryUnavailable
from portus_fab.tasks import ENRICH, SWEEP, SYNC, enqueue_enrich


@shared_task(
    name=ENRICH,
    bind=True,
    max_retries=12,
)
def enrich_digests(task: Task, pairs: list[list[str]]) -> int:
    """Describe each (repository, digest). When the registry is unreachable, retry with
    exponential backoff and jitter, from the pair that failed on (the others are done)."""
    core = portus()
    client = core.registry_client()
    done = 0
    for index, (repository, digest) in enumerate(pairs):
        try:
            done += enrichment.enrich(core.session, client, repository, digest)
        except RegistryUnavailable as error:
            delay = get_exponential_backoff_interval(2, task.request.retries, 300, full_jitter=True)
            raise task.retry(args=(pairs[index:],), exc=error, countdown=delay) from error
    return done


@shared_task(name=SWEEP)
def sweep_unenriched() -> int:
    """Apply events a dead web process left pending, then enqueue what is still unenriched."""
    core = portus()
    grace = dt.timedelta(seconds=core.settings.sweep_interval)
    events.apply_pending(core.session, received_before=utcnow() - grace)
    return enrichment.sweep(core.session, enqueue_enrich, grace)


@shared_task(
    name=SYNC,
    autoretry_for=(RegistryUnavailable,),
    retry_backoff=30,
    retry_backoff_max=900,
    max_retries=5,
)
def sync_catalog() -> dict[str, int]:
    core = portus()
    with acting(REGISTRY), transaction(core.session) as session:
        report = sync.sync_catalog(session, core.registry_client())
    enqueue_enrich(report.to_enrich)
    return report.counts()
