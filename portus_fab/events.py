"""Recording the registry's notifications: each event once, applied to the catalog.

The webhook calls `ingest` and answers; slow work (asking the registry about a manifest) is left
to the workers, for the (repository, digest) pairs returned in `IngestResult.to_enrich`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portus_fab import catalog
from portus_fab.models import RegistryEventRecord, Repository, Tag
from portus_fab.policy import INTERNAL_IDENTITY
from portus_fab.registry.notifications import ParsedEnvelope, RegistryEvent, RejectedEvent

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    to_enrich: set[tuple[str, str]] = field(default_factory=set)

    def summary(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "ignored": self.ignored,
        }


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _record(event: RegistryEvent) -> RegistryEventRecord:
    return RegistryEventRecord(
        event_id=event.event_id,
        action=event.action,
        repository=event.repository,
        tag=event.tag,
        digest=event.digest,
        media_type=event.media_type,
        actor=event.actor,
        occurred_at=_naive_utc(event.timestamp),
        status="accepted",
    )


def _rejected_record(rejected: RejectedEvent) -> RegistryEventRecord:
    return RegistryEventRecord(
        event_id=rejected.event_id, status="rejected", reason=rejected.reason, raw=rejected.raw
    )


def ingest(session: Session, envelope: ParsedEnvelope) -> IngestResult:
    """Store and apply an envelope in one transaction, falling back to one event at a time when
    a concurrent delivery of the same events wins a race (unique event ids)."""
    try:
        result = _ingest(session, envelope, per_event=False)
        session.commit()
        return result
    except IntegrityError:
        session.rollback()
    result = _ingest(session, envelope, per_event=True)
    session.commit()
    return result


def _ingest(session: Session, envelope: ParsedEnvelope, *, per_event: bool) -> IngestResult:
    result = IngestResult(ignored=envelope.ignored)
    ids = [e.event_id for e in envelope.events] + [
        r.event_id for r in envelope.rejected if r.event_id
    ]
    known = (
        set(
            session.scalars(
                select(RegistryEventRecord.event_id).where(RegistryEventRecord.event_id.in_(ids))
            )
        )
        if ids
        else set()
    )
    pulls: list[RegistryEvent] = []
    for rejected in envelope.rejected:
        if rejected.event_id and rejected.event_id in known:
            result.duplicates += 1
            continue
        if _store(session, _rejected_record(rejected), per_event):
            result.rejected += 1
        else:
            result.duplicates += 1
        log.warning("registry event rejected: %s", rejected.reason)
    for event in envelope.events:
        if event.event_id in known:
            result.duplicates += 1
            continue
        known.add(event.event_id)
        if event.action == "pull":
            if _store(session, _record(event), per_event):
                result.accepted += 1
                if event.actor != INTERNAL_IDENTITY:  # our own workers' fetches are not pulls
                    pulls.append(event)
            else:
                result.duplicates += 1
            continue
        _apply_one(session, event, result, per_event)
    _count_pulls(session, pulls)
    return result


def _store(session: Session, record: RegistryEventRecord, per_event: bool) -> bool:
    """Add the record; in per-event mode, in a savepoint so a duplicate only skips itself."""
    if not per_event:
        session.add(record)
        return True
    try:
        with session.begin_nested():
            session.add(record)
        return True
    except IntegrityError:
        return False


def _apply_one(
    session: Session, event: RegistryEvent, result: IngestResult, per_event: bool
) -> None:
    """Apply a push or delete. An event that fails to apply is kept as rejected, with why; the
    rest of the envelope goes on (the registry would otherwise retry it forever)."""
    try:
        with session.begin_nested():
            record = _record(event)
            session.add(record)
            session.flush()
            enrich = _apply(session, event)
        result.accepted += 1
        if enrich:
            result.to_enrich.add(enrich)
    except IntegrityError:
        if not per_event:
            raise
        result.duplicates += 1
    except Exception as error:  # noqa: BLE001 - one surprising event must not block the queue
        log.exception("registry event %s could not be applied", event.event_id)
        raw = json.dumps(
            {
                "id": event.event_id,
                "action": event.action,
                "repository": event.repository,
                "tag": event.tag,
                "digest": event.digest,
            }
        )
        if _store(
            session,
            RegistryEventRecord(
                event_id=event.event_id,
                action=event.action,
                repository=event.repository,
                status="rejected",
                reason=f"could not be applied: {error}",
                raw=raw,
            ),
            per_event=True,
        ):
            result.rejected += 1


def _apply(session: Session, event: RegistryEvent) -> tuple[str, str] | None:
    at = _naive_utc(event.timestamp)
    if event.action == "push":
        if event.tag is None or event.digest is None:
            return None  # a manifest pushed by digest only (an index child): nothing to show
        repository = catalog.get_or_create_repository(session, event.repository)
        tag = catalog.record_push(
            session,
            repository,
            event.tag,
            event.digest,
            media_type=event.media_type,
            actor=event.actor,
            at=at,
        )
        return None if tag.enriched else (event.repository, event.digest)
    if event.action == "delete":
        repository = session.scalar(select(Repository).where(Repository.name == event.repository))
        if repository is not None:
            catalog.remove_tags(
                session, repository, digest=event.digest, tag_name=event.tag, actor=event.actor
            )
    return None


def _count_pulls(session: Session, pulls: list[RegistryEvent]) -> None:
    """One UPDATE per distinct repository and tag of the envelope, not one per event."""
    if not pulls:
        return
    by_repository = Counter(event.repository for event in pulls)
    by_tag = Counter((event.repository, event.tag) for event in pulls if event.tag)
    last = {}
    for event in pulls:
        moment = _naive_utc(event.timestamp)
        for key in (event.repository, (event.repository, event.tag)):
            last[key] = max(last.get(key, moment), moment)
    for name, count in by_repository.items():
        session.execute(
            update(Repository)
            .where(Repository.name == name)
            .values(
                pull_count=Repository.pull_count + count,
                last_pulled_at=_later(Repository.last_pulled_at, last[name]),
            )
        )
    for (name, tag_name), count in by_tag.items():
        repository_id = select(Repository.id).where(Repository.name == name).scalar_subquery()
        session.execute(
            update(Tag)
            .where(Tag.repository_id == repository_id, Tag.name == tag_name)
            .values(
                pull_count=Tag.pull_count + count,
                last_pulled_at=_later(Tag.last_pulled_at, last[(name, tag_name)]),
            )
        )


def _later(column, moment: dt.datetime):  # noqa: ANN001, ANN202 - SQL expressions
    """Events arrive in no guaranteed order: never move a last-pulled time backwards."""
    return case((column.is_(None) | (column < moment), moment), else_=column)
