"""The tasks: thin wrappers that fetch the app's collaborators and call plain functions."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from portus_fab import enrichment, sync
from portus_fab.core import portus
from portus_fab.registry.errors import RegistryUnavailable
from portus_fab.tasks import ENRICH, SWEEP, SYNC, enqueue_enrich


@shared_task(
    name=ENRICH,
    autoretry_for=(RegistryUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=12,
)
def enrich_digest(repository: str, digest: str) -> int:
    core = portus()
    return enrichment.enrich(core.session, core.registry_client(), repository, digest)


@shared_task(name=SWEEP)
def sweep_unenriched() -> int:
    core = portus()
    grace = dt.timedelta(seconds=core.settings.sweep_interval)
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
    report = sync.sync_catalog(core.session, core.registry_client())
    enqueue_enrich(report.to_enrich)
    return report.counts()
