"""What the workers do with the registry: describe a manifest digest, and find what was missed."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from portus_fab.catalog import repositories
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import describe_manifest

log = logging.getLogger(__name__)


def enrich(session: Session, client: RegistryClient, repository: str, digest: str) -> int:
    """Fetch the manifest (and configs, and an index's children) and store the details on every
    tag of the repository that points at `digest`. Idempotent. Raises RegistryUnavailable when
    the registry cannot be reached, so that the task is retried."""
    try:
        media_type, _, body = client.manifest(repository, digest)
    except RegistryUnavailable:
        raise
    except RegistryError as error:
        if error.status == 404:
            repositories.mark_unenrichable(
                session, repository, digest, f"not in the registry: {error}"
            )
            session.commit()
            return 0
        raise

    def fetch_manifest(child: str) -> tuple[str, bytes]:
        child_type, _, child_body = client.manifest(repository, child)
        return child_type, child_body

    details = describe_manifest(
        digest, media_type, body, fetch_manifest, lambda blob: client.blob(repository, blob)
    )
    updated = repositories.store_details(session, repository, details)
    session.commit()
    if details.skipped:
        log.info("enriched %s@%s with notes: %s", repository, digest, "; ".join(details.skipped))
    return updated


def sweep(
    session: Session,
    enqueue: Callable[[Iterable[tuple[str, str]]], int],
    grace: dt.timedelta,
) -> int:
    """Enqueue again every digest whose tags were never described (say the broker was down
    when the push arrived, or a worker died mid-task). Only pushes older than `grace` are taken:
    younger ones are still in their own task's hands. Returns how many were enqueued."""
    pending = repositories.unenriched(session, older_than=utcnow() - grace)
    session.rollback()
    return enqueue(pending) if pending else 0
