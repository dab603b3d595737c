"""Personal access tokens: create (the secret shown once), list, revoke, and prove one.

Used alike by the screens, the CLI and `authenticate`. A token is its owner acting with less:
the principal it proves is the owner's, with a ceiling of the token's level and namespaces,
so `decide` never lets it do more than its owner may now, nor more than the token allows.

Why beside FAB's API keys (FAB_API_KEY_ENABLED) and not on them: FAB hashes its keys with scrypt
(tens of milliseconds, on every pull), honours them only on its own REST endpoints, and does not
enforce their scopes. A token here is checked with one keyed hash and one indexed read (then
cached), and its ceiling is the policy's. The REST API of the next issues accepts the same
secret as a Bearer token through the same `authenticate`, so one token serves both.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from flask_appbuilder.security.sqla.models import Group, User
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, selectinload

from portus_fab.access.policy import (
    Action,
    Ceiling,
    Principal,
    PrincipalKind,
    manages_credentials_of,
)
from portus_fab.audit import Kind, Target, TargetType, record
from portus_fab.audit.origin import Origin
from portus_fab.auth.credentials import principal_for, same_username
from portus_fab.auth.secrets import SecretHasher, SecretKind, generate
from portus_fab.auth.usage import Throttle, write_last_use
from portus_fab.errors import Conflict, Invalid, NotFound
from portus_fab.models import AccessLevel, AccessToken, Namespace
from portus_fab.models.activity import ADDRESS_MAX
from portus_fab.models.namespaces import utcnow
from portus_fab.models.tokens import TOKEN_NAME_MAX
from portus_fab.settings import Settings

LEVEL_ACTIONS: dict[AccessLevel, frozenset[Action]] = {
    AccessLevel.READ: frozenset({Action.PULL}),
    AccessLevel.WRITE: frozenset({Action.PULL, Action.PUSH}),
    AccessLevel.DELETE: frozenset({Action.PULL, Action.PUSH, Action.DELETE}),
}
# A name a person types and reads back in a list: no control characters, no slash (audit
# targets are `user/name`).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")
# At most one last-use write per token per this many seconds, whatever the pull rate.
LAST_USE_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ExpiryRules:
    """The admin's settings: PORTUS_ACCESS_TOKEN_{DEFAULT_DAYS,MAX_DAYS,ALLOW_NO_EXPIRY}."""

    default_days: int
    max_days: int
    allow_no_expiry: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ExpiryRules:
        return cls(
            settings.access_token_default_days,
            settings.access_token_max_days,
            settings.access_token_allow_no_expiry,
        )


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: AccessToken
    secret: str  # shown once, never stored


def ceiling_of(token: AccessToken) -> Ceiling:
    namespaces = None if token.namespaces is None else frozenset(token.namespaces)
    return Ceiling(LEVEL_ACTIONS[token.access], namespaces)


def is_live(token: AccessToken, now: dt.datetime) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def state_of(token: AccessToken, now: dt.datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _target(user: User, name: str) -> Target:
    return Target(TargetType.ACCESS_TOKEN, f"{user.username}/{name}")


def _parse_level(access: str) -> AccessLevel:
    try:
        return AccessLevel(access)
    except ValueError:
        levels = ", ".join(level.value for level in AccessLevel)
        raise Invalid(f"unknown access level {access!r}: use one of {levels}") from None


def _expiry(
    rules: ExpiryRules, now: dt.datetime, days: int | None, never: bool
) -> dt.datetime | None:
    if never:
        if days is not None:
            raise Invalid("give either an expiry in days or no expiry, not both")
        if not rules.allow_no_expiry:
            raise Invalid(
                "tokens must expire here (PORTUS_ACCESS_TOKEN_ALLOW_NO_EXPIRY is off): "
                f"at most {rules.max_days} days"
            )
        return None
    days = rules.default_days if days is None else days
    if not 1 <= days <= rules.max_days:
        raise Invalid(f"the expiry must be 1 to {rules.max_days} days, not {days}")
    return now + dt.timedelta(days=days)


def _namespaces(session: Session, names: Iterable[str]) -> list[str] | None:
    wanted = sorted({name.strip() for name in names if name.strip()})
    if not wanted:
        return None
    found = set(session.scalars(select(Namespace.name).where(Namespace.name.in_(wanted))))
    missing = [name for name in wanted if name not in found]
    if missing:
        raise NotFound(f"no namespace named {', '.join(missing)}")
    return wanted


def create_token(
    session: Session,
    hasher: SecretHasher,
    rules: ExpiryRules,
    user: User,
    name: str,
    access: str,
    *,
    namespaces: Iterable[str] = (),
    expires_days: int | None = None,
    never_expires: bool = False,
) -> CreatedToken:
    """A new token of `user`. A revoked or expired token of the same name gives way to it."""
    name = name.strip()
    if not name or len(name) > TOKEN_NAME_MAX or not _NAME.fullmatch(name):
        raise Invalid(
            f"a token name is 1 to {TOKEN_NAME_MAX} letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    level = _parse_level(access)
    now = utcnow()
    expires_at = _expiry(rules, now, expires_days, never_expires)
    limited_to = _namespaces(session, namespaces)
    existing = session.scalar(
        select(AccessToken).where(AccessToken.user_id == user.id, AccessToken.name == name)
    )
    if existing is not None:
        if is_live(existing, now):
            raise Conflict(f"{user.username} already has a token named {name!r}")
        session.execute(delete(AccessToken).where(AccessToken.id == existing.id))
    secret = generate(SecretKind.ACCESS_TOKEN)
    token = AccessToken(
        user_id=user.id,
        name=name,
        access=level,
        namespaces=limited_to,
        secret_hash=hasher.hash(secret),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record(
        session,
        Kind.ACCESS_TOKEN_CREATED,
        target=_target(user, name),
        details={
            "access": level.value,
            "namespaces": limited_to,
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        },
    )
    return CreatedToken(token, secret)


def list_tokens(session: Session, user: User) -> list[AccessToken]:
    """The user's tokens, revoked and expired ones too (they say when they stopped), newest
    first."""
    return list(
        session.scalars(
            select(AccessToken)
            .where(AccessToken.user_id == user.id)
            .order_by(AccessToken.created_at.desc(), AccessToken.id.desc())
        )
    )


def listed(session: Session, principal: Principal) -> list[AccessToken]:
    """The tokens `principal` sees (the policy's `manages_credentials_of`: a person their own,
    an admin everyone's), revoked and expired ones too, newest first."""
    return list(
        session.scalars(
            select(AccessToken)
            .where(manages_credentials_of(principal, AccessToken.user_id))
            .options(selectinload(AccessToken.user))
            .order_by(AccessToken.created_at.desc(), AccessToken.id.desc())
        )
    )


def revoke_listed(session: Session, principal: Principal, token_id: int) -> AccessToken:
    """Revoke a token `principal` sees; anyone else's is as absent as one that never was."""
    token = session.scalar(
        select(AccessToken).where(
            AccessToken.id == token_id, manages_credentials_of(principal, AccessToken.user_id)
        )
    )
    if token is None:
        raise NotFound(f"no access token {token_id}")
    return revoke_token(session, token.user, token.name)


def revoke_token(session: Session, user: User, name: str) -> AccessToken:
    """Revoke the token at once: the change bumps the policy epoch (access/hooks.py), so no
    process answers it from its credential cache again."""
    token = find_token(session, user, name)
    if token.revoked_at is not None:
        raise Conflict(f"the token {name!r} of {user.username} is already revoked")
    token.revoked_at = utcnow()
    session.flush()
    record(session, Kind.ACCESS_TOKEN_REVOKED, target=_target(user, name))
    return token


# --- proving a token ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proof:
    """What a secret proved: the principal (its `expires_at` the token's), or why a real token
    was refused (`refusal`, for the audit record; the client only hears "invalid")."""

    principal: Principal | None
    refusal: str | None = None
    token: AccessToken | None = None


def prove(
    session: Session,
    hasher: SecretHasher,
    username: str,
    secret: str,
    *,
    admin_role: str,
    case_insensitive: bool,
) -> Proof:
    """The owner's principal with the token's ceiling, if `secret` is a live token of the user
    named `username` and that user is active. One indexed read by the secret's hash and the
    owner's roles; no slow hash, whether the user exists or not."""
    token = session.scalar(
        select(AccessToken)
        .where(AccessToken.secret_hash == hasher.hash(secret))
        .options(
            selectinload(AccessToken.user).selectinload(User.roles),
            selectinload(AccessToken.user).selectinload(User.groups).selectinload(Group.roles),
        )
    )
    if token is None:
        return Proof(None)
    user = token.user
    now = utcnow()
    refusal = None
    if not same_username(username, user.username, case_insensitive=case_insensitive):
        refusal = f"used with the username {username[:100]!r}"
    elif token.revoked_at is not None:
        refusal = "revoked"
    elif token.expires_at is not None and token.expires_at <= now:
        refusal = "expired"
    elif not user.active:
        refusal = "its owner is disabled"
    if refusal is not None:
        return Proof(None, refusal=refusal, token=token)
    return Proof(principal_of(token, admin_role), token=token)


def principal_of(token: AccessToken, admin_role: str) -> Principal:
    """The owner as they are now, with the token's ceiling."""
    owner = principal_for(token.user, admin_role)
    return Principal(
        PrincipalKind.ACCESS_TOKEN,
        user_id=owner.user_id,
        username=owner.username,
        is_admin=owner.is_admin,
        active=owner.active,
        ceiling=ceiling_of(token),
        token_id=token.id,
        token_name=token.name,
        expires_at=token.expires_at,
    )


def find_token(session: Session, user: User, name: str) -> AccessToken:
    token = session.scalar(
        select(AccessToken).where(AccessToken.user_id == user.id, AccessToken.name == name)
    )
    if token is None:
        raise NotFound(f"{user.username} has no token named {name!r}")
    return token


class LastUse:
    """Records when and from where a token was last used, and its refused uses, without a write
    per pull (portus_fab.auth.usage)."""

    def __init__(self, interval: float = LAST_USE_INTERVAL) -> None:
        self._interval = interval
        self._throttle = Throttle(interval)
        self._refusals = Throttle(interval)

    def note(self, engine: Engine, token_id: int, address: str | None) -> None:
        if not self._throttle.due(token_id):
            return
        write_last_use(
            engine,
            AccessToken.__table__,
            token_id,
            self._interval,
            last_used_from=address and address[:ADDRESS_MAX],
        )

    def refused(self, engine: Engine, proof: Proof, address: str | None) -> None:
        """The audit record of a real token refused, once a minute per token at most: a CI job
        retrying with a revoked token must not write a row per attempt."""
        token = proof.token
        if token is None or not self._refusals.due(token.id):
            return
        with Session(engine) as session, session.begin():
            record(
                session,
                Kind.ACCESS_TOKEN_REFUSED,
                target=_target(token.user, token.name),
                origin=Origin(token.user.username, address),
                detail=proof.refusal,
            )
