"""Repositories and tags as the registry's notifications and the workers describe them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from portus_fab.models.base import Model
from portus_fab.models.namespaces import Namespace, utcnow
from portus_fab.registry.limits import (
    ACTOR_MAX,
    DIGEST_MAX,
    MEDIA_TYPE_MAX,
    REPOSITORY_NAME_MAX,
    TAG_MAX,
)


class Repository(Model):
    __tablename__ = "portus_repository"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(REPOSITORY_NAME_MAX), unique=True, nullable=False)
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("portus_namespace.id", ondelete="CASCADE"), nullable=False, index=True
    )
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    last_pushed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    pull_count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    last_pulled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    namespace: Mapped[Namespace] = relationship()
    tags: Mapped[list[Tag]] = relationship(
        back_populates="repository", cascade="all, delete-orphan", order_by="Tag.name"
    )

    def __repr__(self) -> str:
        return self.name


class Tag(Model):
    __tablename__ = "portus_tag"
    __table_args__ = (UniqueConstraint("repository_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("portus_repository.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(TAG_MAX), nullable=False)
    digest: Mapped[str] = mapped_column(String(DIGEST_MAX), nullable=False, index=True)
    media_type: Mapped[str | None] = mapped_column(String(MEDIA_TYPE_MAX))
    pushed_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    pushed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    pull_count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    last_pulled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Filled by the enrich worker; `enriched_digest` says which digest the details describe, so
    # a tag that moved is enriched again and a late worker never overwrites newer details.
    enriched_digest: Mapped[str | None] = mapped_column(String(DIGEST_MAX))
    enriched_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    enrich_error: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    created: Mapped[dt.datetime | None] = mapped_column(DateTime)
    platforms: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, nullable=False)
    # Per platform image: layers (digest, size, media type), history commands, size.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)

    repository: Mapped[Repository] = relationship(back_populates="tags")

    # Hybrids: the same rule on a loaded tag and in a query (`~Tag.enriched`: still waiting).
    @hybrid_property
    def enriched(self) -> bool:
        """The worker is done with the digest: described, or failed (see `enrich_failed`)."""
        return self.enriched_digest == self.digest

    @enriched.inplace.expression
    @classmethod
    def _enriched_expression(cls) -> ColumnElement[bool]:
        # Spelled out for NULL: "not enriched" must hold for a tag never described.
        return and_(cls.enriched_digest.is_not(None), cls.enriched_digest == cls.digest)

    @hybrid_property
    def enrich_failed(self) -> bool:
        """The digest could not be described; `enrich_error` says why. Set only on failure: the
        notes on a described digest are in `details`."""
        return self.enriched and self.enrich_error is not None

    @enrich_failed.inplace.expression
    @classmethod
    def _enrich_failed_expression(cls) -> ColumnElement[bool]:
        return and_(cls.enriched, cls.enrich_error.is_not(None))

    @property
    def reference(self) -> str:
        return f"{self.repository.name}:{self.name}"

    def __repr__(self) -> str:
        return self.reference
