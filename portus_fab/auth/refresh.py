"""Refresh tokens: issue one to a user who proved their password, prove one, list, revoke.

`docker login` asks for one (GET `offline_token=true&client_id=docker`) and keeps it as its
identity token instead of the password; containerd and the docker daemon then trade it for
access tokens (POST `grant_type=refresh_token`). A refresh token is its owner acting with every
right the owner has at the time of each request, so it is issued only for a password (never
for an access token or a robot, whose ceiling it would lift), and it stops working when it is
revoked, when its owner is disabled or deleted, or when the owner's password changes. It is
never rotated on use: the docker daemon keeps the one it got at login (moby issue 39718).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from flask_appbuilder.security.sqla.models import Group, User
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from portus_fab.access.policy import Principal, PrincipalKind, manages_credentials_of
from portus_fab.audit import Kind, Target, TargetType, record
from portus_fab.audit.origin import Origin
from portus_fab.auth.access_tokens import LAST_USE_INTERVAL
from portus_fab.auth.credentials import principal_for
from portus_fab.auth.secrets import SecretHasher, SecretKind, generate, looks_like
from portus_fab.auth.usage import Throttle, write_last_use
from portus_fab.errors import Conflict, Invalid, NotFound
from portus_fab.models import RefreshToken
from portus_fab.models.namespaces import utcnow
from portus_fab.models.refresh_tokens import CLIENT_ID_MAX

# RFC 6749, appendix A.1: client_id is printable ASCII (VSCHAR).
_CLIENT_ID = re.compile(r"[\x20-\x7e]+")


def password_fingerprint(password_hash: str | None) -> str:
    """What a refresh token remembers of its owner's password. The password hash is salted, so a
    new password, even the same one again, gives a new fingerprint; the hash itself is not
    stored a second time."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()


def check_client_id(client_id: str | None) -> str:
    """The client id a refresh token is issued to (shown in its owner's list), or Invalid."""
    if not client_id:
        raise Invalid("a refresh token needs a client_id naming the client (docker sends docker)")
    if len(client_id) > CLIENT_ID_MAX or not _CLIENT_ID.fullmatch(client_id):
        raise Invalid(f"client_id must be 1 to {CLIENT_ID_MAX} printable ASCII characters")
    return client_id


def may_have_refresh_token(principal: Principal) -> bool:
    """Only a person's password earns one: an access token or a robot has a ceiling (or rights of
    its own) that a refresh token, which proves the bare owner, would lift."""
    return principal.kind == PrincipalKind.USER and principal.ceiling is None


def _target(username: str, token: RefreshToken) -> Target:
    return Target(TargetType.REFRESH_TOKEN, f"{username}/{token.id}")


def issue(session: Session, hasher: SecretHasher, user: User, client_id: str) -> str:
    """A new refresh token of `user` for `client_id` (check_client_id); returns the secret,
    which is never stored. The caller proved `user`'s password in this same policy epoch."""
    secret = generate(SecretKind.REFRESH_TOKEN)
    token = RefreshToken(
        user_id=user.id,
        client_id=client_id,
        secret_hash=hasher.hash(secret),
        password_fingerprint=password_fingerprint(user.password),
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    record(
        session,
        Kind.REFRESH_TOKEN_ISSUED,
        target=_target(user.username, token),
        actor=user.username,
        details={"client_id": client_id},
    )
    return secret


@dataclass(frozen=True, slots=True)
class Proof:
    """What a secret proved: the owner's principal, or why a real token was refused
    (`refusal`, for the audit record; the client hears one message for every refusal)."""

    principal: Principal | None
    token: RefreshToken | None = None
    refusal: str | None = None


def refusal_of(token: RefreshToken, owner: User | None) -> str | None:
    if token.revoked_at is not None:
        return "revoked"
    if owner is None:
        return "its owner was deleted"
    if not owner.active:
        return "its owner is disabled"
    if token.password_fingerprint != password_fingerprint(owner.password):
        return "its owner's password changed since it was issued"
    return None


def prove(session: Session, hasher: SecretHasher, secret: str, *, admin_role: str) -> Proof:
    """The owner's principal if `secret` is a live refresh token: one indexed read by the
    secret's keyed hash, with the owner's roles; no slow hash."""
    if not looks_like(secret, SecretKind.REFRESH_TOKEN):
        return Proof(None)
    token = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.secret_hash == hasher.hash(secret))
        .options(
            selectinload(RefreshToken.user).selectinload(User.roles),
            selectinload(RefreshToken.user).selectinload(User.groups).selectinload(Group.roles),
        )
    )
    if token is None or not hasher.matches(secret, token.secret_hash):
        return Proof(None)
    refusal = refusal_of(token, token.user)
    if refusal is not None:
        return Proof(None, token=token, refusal=refusal)
    return Proof(principal_for(token.user, admin_role), token=token)


class RefreshTokenUse:
    """Last use and refused use of refresh tokens, without a write per pull
    (portus_fab.auth.usage)."""

    def __init__(self, interval: float = LAST_USE_INTERVAL) -> None:
        self._interval = interval
        self._uses = Throttle(interval)
        self._refusals = Throttle(interval)

    def note(self, engine: Engine, token_id: int) -> None:
        if self._uses.due(token_id):
            write_last_use(engine, RefreshToken.__table__, token_id, self._interval)

    def refused(self, engine: Engine, proof: Proof, address: str | None) -> None:
        """The audit record of a real token refused, once a minute per token at most: a daemon
        retrying with a revoked token must not write a row per attempt."""
        token = proof.token
        if token is None or not self._refusals.due(token.id):
            return
        username = token.user.username if token.user else "?"
        with Session(engine) as session, session.begin():
            record(
                session,
                Kind.REFRESH_TOKEN_REFUSED,
                target=_target(username, token),
                origin=Origin(username, address),
                detail=proof.refusal,
                details={"client_id": token.client_id},
            )


# --- the owner's screen ------------------------------------------------------------------------


def visible_tokens(principal: Principal) -> ColumnElement[bool]:
    """The refresh tokens `principal` sees and may revoke: their own; an admin's, everyone's."""
    return manages_credentials_of(principal, RefreshToken.user_id)


def listed(session: Session, principal: Principal) -> list[RefreshToken]:
    """The refresh tokens `principal` sees, revoked ones too (they say when), newest first."""
    return list(
        session.scalars(
            select(RefreshToken)
            .where(visible_tokens(principal))
            .options(selectinload(RefreshToken.user))
            .order_by(RefreshToken.created_at.desc(), RefreshToken.id.desc())
        )
    )


def revoke(session: Session, principal: Principal, token_id: int) -> RefreshToken:
    """Revoke at once: the change bumps the policy epoch (access/hooks.py), so no process
    answers the token from its credential cache again."""
    token = session.scalar(
        select(RefreshToken).where(RefreshToken.id == token_id, visible_tokens(principal))
    )
    if token is None:
        # Someone else's token is as absent as one that never existed.
        raise NotFound(f"no refresh token {token_id}")
    if token.revoked_at is not None:
        raise Conflict(f"refresh token {token_id} is already revoked")
    token.revoked_at = utcnow()
    session.flush()
    record(
        session,
        Kind.REFRESH_TOKEN_REVOKED,
        target=_target(token.user.username, token),
        details={"client_id": token.client_id},
    )
    return token
