"""Recording the registry's notifications: each event once, applied to the catalog.

The webhook calls `ingest` and answers; slow work (asking the registry about a manifest) is left
to the workers, for the (repository, digest) pairs returned in `IngestResult.to_enrich`.

An envelope is applied in one transaction with a constant number of statements for its pushes
and pulls. If anything in it fails (a concurrent delivery of the same event ids, or an event
nobody foresaw), the transaction is rolled back and the envelope applied again one event at a
time, each in a savepoint: a duplicate then only skips itself and a failing event is recorded as
rejected, with why, while the others are applied. Never an error for the registry to retry.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


def _record(event: RegistryEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "action": event.action,
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
        "media_type": event.media_type,
        "actor": event.actor,
        "occurred_at": _naive_utc(event.timestamp),
        "status": "accepted",
        "reason": None,
        "raw": None,
    }


def _rejected_record(rejected: RejectedEvent) -> dict[str, Any]:
    return {
        "event_id": rejected.event_id,
        "action": None,
        "repository": None,
        "tag": None,
        "digest": None,
        "media_type": None,
        "actor": None,
        "occurred_at": None,
        "status": "rejected",
        "reason": rejected.reason,
        "raw": rejected.raw,
    }


def ingest(session: Session, envelope: ParsedEnvelope) -> IngestResult:
    try:
        result = _ingest_together(session, envelope)
        session.commit()
        return result
    except Exception:  # noqa: BLE001 - retried event by event below, where each is judged alone
        session.rollback()
        log.info("envelope applied again event by event", exc_info=True)
    result = _ingest_one_by_one(session, envelope)
    session.commit()
    return result


_EVENTS = RegistryEventRecord.__table__
# Insert-unless-stored in one statement where the database can (SQLite 3.35+, PostgreSQL).
_INSERT_NEW = {
    "sqlite": sqlite_insert(_EVENTS).on_conflict_do_nothing(index_elements=["event_id"]),
    "postgresql": postgresql_insert(_EVENTS).on_conflict_do_nothing(index_elements=["event_id"]),
}


def _store_new(session: Session, records: list[dict[str, Any]]) -> set[str | None]:
    """Store the records whose event id is not stored yet; return the ids stored (None stands
    for rejected events without a usable id, which are always stored)."""
    if not records:
        return set()
    connection = session.connection()
    statement = _INSERT_NEW.get(connection.dialect.name)
    if statement is not None:
        stored = connection.execute(statement.returning(_EVENTS.c.event_id), records)
        return set(stored.scalars())
    ids = [r["event_id"] for r in records if r["event_id"] is not None]
    known = set(connection.scalars(select(_EVENTS.c.event_id).where(_EVENTS.c.event_id.in_(ids))))
    new = [r for r in records if r["event_id"] is None or r["event_id"] not in known]
    if new:
        connection.execute(insert(_EVENTS), new)
    return {r["event_id"] for r in new}


def _push(event: RegistryEvent) -> catalog.Push | None:
    if event.tag is None or event.digest is None:
        return None  # a manifest pushed by digest only (an index's child): nothing to show
    return catalog.Push(
        event.repository,
        event.tag,
        event.digest,
        event.media_type,
        event.actor,
        _naive_utc(event.timestamp),
    )


def _ingest_together(session: Session, envelope: ParsedEnvelope) -> IngestResult:
    result = IngestResult(ignored=envelope.ignored)
    stored = _store_new(
        session,
        [_record(e) for e in envelope.events] + [_rejected_record(r) for r in envelope.rejected],
    )
    fresh = [e for e in envelope.events if e.event_id in stored]
    rejected = [r for r in envelope.rejected if r.event_id is None or r.event_id in stored]
    result.duplicates = len(envelope.events) + len(envelope.rejected) - len(fresh) - len(rejected)
    for item in rejected:
        log.warning("registry event rejected: %s", item.reason)
    # Pushes are applied in batches; a delete in between must see the pushes before it.
    batch: list[catalog.Push] = []
    for event in fresh:
        if event.action == "push" and (push := _push(event)) is not None:
            batch.append(push)
        elif event.action == "delete":
            result.to_enrich |= catalog.record_pushes(session, batch)
            batch = []
            _apply_delete(session, event)
    result.to_enrich |= catalog.record_pushes(session, batch)
    count_pulls(session, [e for e in fresh if e.action == "pull"])
    result.accepted, result.rejected = len(fresh), len(rejected)
    return result


def _ingest_one_by_one(session: Session, envelope: ParsedEnvelope) -> IngestResult:
    result = IngestResult(ignored=envelope.ignored)
    for rejected in envelope.rejected:
        if _insert_once(session, _rejected_record(rejected)):
            result.rejected += 1
        else:
            result.duplicates += 1
    for event in envelope.events:
        try:
            with session.begin_nested():
                session.execute(insert(RegistryEventRecord), [_record(event)])
                if event.action == "push" and (push := _push(event)) is not None:
                    result.to_enrich |= catalog.record_pushes(session, [push])
                elif event.action == "delete":
                    _apply_delete(session, event)
                elif event.action == "pull":
                    count_pulls(session, [event])
            result.accepted += 1
        except IntegrityError:
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
            if _insert_once(
                session,
                {
                    **_record(event),
                    "status": "rejected",
                    "raw": raw,
                    "reason": f"could not be applied: {error}",
                },
            ):
                result.rejected += 1
    return result


def _insert_once(session: Session, record: dict[str, Any]) -> bool:
    """Insert the record in a savepoint; False if its event id is already stored."""
    try:
        with session.begin_nested():
            session.execute(insert(RegistryEventRecord), [record])
        return True
    except IntegrityError:
        return False


def _apply_delete(session: Session, event: RegistryEvent) -> None:
    repository = session.scalar(select(Repository).where(Repository.name == event.repository))
    if repository is not None:
        catalog.remove_tags(
            session, repository, digest=event.digest, tag_name=event.tag, actor=event.actor
        )


def _later(column: Any, moment: Any) -> Any:
    """Events arrive in no guaranteed order: never move a last-pulled time backwards."""
    return case((column.is_(None) | (column < moment), moment), else_=column)


_COUNT_REPOSITORY_PULLS = (
    update(Repository)
    .where(Repository.name == bindparam("b_name"))
    .values(
        pull_count=Repository.pull_count + bindparam("b_pulls"),
        last_pulled_at=_later(Repository.last_pulled_at, bindparam("b_at")),
    )
)
_COUNT_TAG_PULLS = (
    update(Tag)
    .where(
        Tag.repository_id
        == select(Repository.id).where(Repository.name == bindparam("b_name")).scalar_subquery(),
        Tag.name == bindparam("b_tag"),
    )
    .values(
        pull_count=Tag.pull_count + bindparam("b_pulls"),
        last_pulled_at=_later(Tag.last_pulled_at, bindparam("b_at")),
    )
)


def count_pulls(session: Session, pulls: Iterable[RegistryEvent]) -> None:
    """Two statements for any number of pulls (blob pulls never get here). Pulls made by
    portus_fab's own workers are not counted."""
    pulls = [event for event in pulls if event.actor != INTERNAL_IDENTITY]
    if not pulls:
        return
    by_repository = Counter(event.repository for event in pulls)
    by_tag = Counter((event.repository, event.tag) for event in pulls if event.tag)
    last: dict[Any, dt.datetime] = {}
    for event in pulls:
        moment = _naive_utc(event.timestamp)
        for key in (event.repository, (event.repository, event.tag)):
            last[key] = max(last.get(key, moment), moment)
    connection = session.connection()
    connection.execute(
        _COUNT_REPOSITORY_PULLS,
        [{"b_name": name, "b_pulls": n, "b_at": last[name]} for name, n in by_repository.items()],
    )
    if by_tag:
        connection.execute(
            _COUNT_TAG_PULLS,
            [
                {"b_name": name, "b_tag": tag, "b_pulls": n, "b_at": last[(name, tag)]}
                for (name, tag), n in by_tag.items()
            ],
        )
