"""Refresh tokens: what `docker login` keeps instead of the password (its "identity token").

The OAuth2 form of the registry token protocol hands one out on request (GET `offline_token=true`
or POST `access_type=offline`); the client then trades it for access tokens
(`grant_type=refresh_token`) until it is revoked. Only the HMAC of the secret is stored. It is
never rotated on use: the docker daemon keeps the one it got at login (moby issue 39718).
"""

from __future__ import annotations

import datetime as dt

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portus_fab.models.base import Model
from portus_fab.models.namespaces import utcnow

# RFC 6749 puts no bound on client_id; docker sends "docker", containerd "containerd-client".
CLIENT_ID_MAX = 128
# HMAC-SHA256 in hex (portus_fab.auth.secrets.SecretHasher), SHA-256 in hex for the fingerprint.
HASH_LENGTH = 64


class RefreshToken(Model):
    __tablename__ = "portus_refresh_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The owner's tokens go with the owner, on every database (hooks.py deletes them on SQLite,
    # which enforces no ON DELETE here).
    user_id: Mapped[int] = mapped_column(
        ForeignKey(User.id, ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), nullable=False)
    # Unique: authentication finds the token by the hash of the secret it is given.
    secret_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True, nullable=False)
    # SHA-256 of the owner's password hash when the token was issued: a new password (a new
    # hash) refuses every token issued before it, in every process, with no write on the change.
    password_fingerprint: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # Written at most once a minute per token and process, by a plain UPDATE (never the ORM,
    # whose flush would bump the policy epoch): see portus_fab.auth.refresh.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship(User)

    def __repr__(self) -> str:
        return f"refresh token {self.id} of {self.user.username if self.user else '?'}"
