"""What happened: every registry event received (accepted or rejected) and the activity log."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portus_fab.models.base import Model
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.limits import (
    ACTION_MAX,
    ACTOR_MAX,
    DIGEST_MAX,
    EVENT_ID_MAX,
    MEDIA_TYPE_MAX,
    REPOSITORY_NAME_MAX,
    TAG_MAX,
)


class EventStatus(enum.StrEnum):
    """Where a stored registry event is: waiting to be applied, applied, or refused (`reason`)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RegistryEventRecord(Model):
    """One notification event. `event_id` is unique so a redelivered event is a no-op."""

    __tablename__ = "portus_registry_event"
    # The event applier looks for pending events, oldest first, many times a second.
    __table_args__ = (Index("ix_portus_registry_event_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The parser rejects an event with a value longer than these (registry/limits.py).
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_MAX), unique=True)
    action: Mapped[str | None] = mapped_column(String(ACTION_MAX))
    repository: Mapped[str | None] = mapped_column(String(REPOSITORY_NAME_MAX), index=True)
    tag: Mapped[str | None] = mapped_column(String(TAG_MAX))
    digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    media_type: Mapped[str | None] = mapped_column(String(MEDIA_TYPE_MAX))
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime, default=utcnow, nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=EventStatus.ACCEPTED.value
    )
    reason: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)


# An IPv6 address with an IPv4 tail and a zone is at most 45 + a few characters.
ADDRESS_MAX = 64
TARGET_TYPE_MAX = 16
# A tag's target name is "repository:tag".
TARGET_NAME_MAX = REPOSITORY_NAME_MAX + 1 + TAG_MAX


class Activity(Model):
    """The one record of what happened (written only by portus_fab.audit): pushes, tag moves,
    deletes, and changes to namespaces, teams, members and grants. Who (`actor`), from where
    (`address`), on what (`target_type`, `target_name`), and the details as JSON; `detail` is
    the one line people read on the screen."""

    __tablename__ = "portus_activity"
    # What happened to one namespace, team or repository, newest first.
    __table_args__ = (Index("ix_portus_activity_target", "target_type", "target_name", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    address: Mapped[str | None] = mapped_column(String(ADDRESS_MAX))
    target_type: Mapped[str | None] = mapped_column(String(TARGET_TYPE_MAX))
    target_name: Mapped[str | None] = mapped_column(String(TARGET_NAME_MAX))
    repository: Mapped[str | None] = mapped_column(String(REPOSITORY_NAME_MAX), index=True)
    tag: Mapped[str | None] = mapped_column(String(TAG_MAX))
    digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    previous_digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    detail: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
