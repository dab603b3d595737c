"""What the workers do with the registry: describe a manifest digest, and find what was missed."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from portus_fab.catalog import repositories
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction
from portus_fab.registry.client import RegistryClient
from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import Undescribable, describe_digest

log = logging.getLogger(__name__)


# Longest failure reason stored: the tag page and doctor show it whole.
MAX_REASON = 1000


def enrich(session: Session, client: RegistryClient, repository: str, digest: str) -> int:
    """Fetch the manifest (and configs, and an index's children) and store the details on every
    tag of the repository that points at `digest`; returns how many tags were described.
    Idempotent.

    One digest's trouble never reaches the caller, so a batch goes on with the next digest: a
    digest that cannot be described (invalid content, a database refusing its row, any error)
    is recorded as failed, with the reason, on its tags, and the sweep leaves it alone. Raises
    RegistryUnavailable when the registry cannot be reached, so that the task is retried. When
    the fault is no digest's (the registry refuses our tokens, the database is unreachable) the
    tags stay waiting and the sweep sends them again.

    Each digest is a transaction of its own (so is recording its failure): that is what lets
    one digest fail alone. The task that loops over digests owns no transaction."""
    try:
        with transaction(session):
            details = describe_digest(
                digest,
                lambda child: _manifest(client, repository, child),
                lambda blob: client.blob(repository, blob),
            )
            updated = repositories.store_details(session, repository, details)
    except RegistryUnavailable:
        raise
    except (RegistryError, OperationalError) as error:
        # describe_digest lets through only a refused token (401, 403); OperationalError is a
        # lost connection, a lock, a deadlock: the database's state, not this row's.
        log.warning("%s@%s stays waiting: %s", repository, digest, error)
        return 0
    except Undescribable as error:
        return _record_failure(session, repository, digest, str(error))
    except SQLAlchemyError as error:
        log.warning("the database refused the details of %s@%s: %s", repository, digest, error)
        cause = getattr(error, "orig", None) or error
        first_line = str(cause).strip().partition("\n")[0]
        reason = f"the database refused its details: {type(cause).__name__}: {first_line}"
        return _record_failure(session, repository, digest, reason)
    except Exception as error:  # noqa: BLE001 - whatever it is, it is this digest's alone
        log.exception("describing %s@%s failed", repository, digest)
        reason = f"unexpected error: {type(error).__name__}: {error}"
        return _record_failure(session, repository, digest, reason)
    if details.skipped:
        log.info("enriched %s@%s with notes: %s", repository, digest, "; ".join(details.skipped))
    return updated


def _manifest(client: RegistryClient, repository: str, reference: str) -> tuple[str, bytes]:
    media_type, _, body = client.manifest(repository, reference)
    return media_type, body


def _record_failure(session: Session, repository: str, digest: str, reason: str) -> int:
    """Mark the tags on `digest` as failed; returns 0 (none was described). If even that fails
    (the database is gone), they stay waiting for the sweep."""
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 3] + "..."
    log.warning("%s@%s cannot be described: %s", repository, digest, reason)
    try:
        with transaction(session):
            repositories.mark_failed(session, repository, digest, reason)
    except SQLAlchemyError:
        log.exception("recording the failure of %s@%s failed; it stays waiting", repository, digest)
    return 0


def sweep(
    session: Session,
    enqueue: Callable[[Iterable[tuple[str, str]]], int],
    grace: dt.timedelta,
) -> int:
    """Enqueue again every digest whose tags were never described (say the broker was down
    when the push arrived, or a worker died mid-task). Only pushes older than `grace` are taken:
    younger ones are still in their own task's hands. Returns how many were enqueued."""
    with transaction(session, commit=False):  # a read: ended before publishing
        pending = repositories.unenriched(session, older_than=utcnow() - grace)
    return enqueue(pending) if pending else 0
