"""Personal access tokens: a user's secrets for machines, each with a level, namespaces and an
expiry. Only the keyed hash of the secret is stored (portus_fab.auth.secrets)."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portus_fab.models.activity import ADDRESS_MAX
from portus_fab.models.base import Model
from portus_fab.models.namespaces import _enum, utcnow

TOKEN_NAME_MAX = 64
SECRET_HASH_LENGTH = 64  # HMAC-SHA256, hex


class AccessLevel(enum.StrEnum):
    """Docker Hub's three levels; each includes the ones before it."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"


class AccessToken(Model):
    __tablename__ = "portus_access_token"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey(User.id, ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX), nullable=False)
    access: Mapped[AccessLevel] = mapped_column(_enum(AccessLevel, "access_level"), nullable=False)
    # The namespace names it is limited to; None: every namespace its owner may use.
    namespaces: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The lookup key of every use: unique, so a use is one indexed read.
    secret_hash: Mapped[str] = mapped_column(
        String(SECRET_HASH_LENGTH), unique=True, nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Written at most once a minute per token (portus_fab.auth.access_tokens.LastUse).
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_from: Mapped[str | None] = mapped_column(String(ADDRESS_MAX), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship(User)

    def __repr__(self) -> str:
        return self.name
