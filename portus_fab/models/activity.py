"""What happened: every registry event received (accepted or rejected) and the activity log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, Integer, String, Text
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
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="accepted")
    reason: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)


class Activity(Model):
    """The audit trail users and admins read: pushes, tag moves, deletes, membership changes."""

    __tablename__ = "portus_activity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    repository: Mapped[str | None] = mapped_column(String(REPOSITORY_NAME_MAX), index=True)
    tag: Mapped[str | None] = mapped_column(String(TAG_MAX))
    digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    previous_digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    detail: Mapped[str | None] = mapped_column(Text)
