"""Checking credentials: users and their passwords, and a short-lived cache of successes.

A returning client asks for a token on every pull and push; running the password hash (scrypt,
tens of milliseconds) and loading the user with its roles each time would make it the bottleneck.
A success is remembered under an HMAC of the credentials, with the principal it proved and the
policy epoch it was read at. Any change to users, roles, groups or policy data bumps the epoch
(access/hooks.py), so a changed password, status or role is seen at the very next request, in
every process. Failures are never remembered. Unlike FAB's `auth_user_db`, nothing is written.
The one way in that uses all this is portus_fab.auth.authenticate.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask_appbuilder.security.sqla.models import Group, User
from flask_appbuilder.security.utils import is_null_password
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.security import check_password_hash

from portus_fab.access.policy import Principal, PrincipalKind
from portus_fab.models.namespaces import utcnow

MAX_ENTRIES = 10_000
K = TypeVar("K")
V = TypeVar("V")


def with_room(entries: dict[K, V], live: Callable[[V], bool]) -> dict[K, V]:
    """`entries`, with room for one more under MAX_ENTRIES: when full, only the `live` ones
    are kept, and none if they still fill it (a cache of successes only costs a slow check)."""
    if len(entries) < MAX_ENTRIES:
        return entries
    kept = {key: value for key, value in entries.items() if live(value)}
    return kept if len(kept) < MAX_ENTRIES else {}


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    epoch: int
    expires: float


class CredentialCache:
    def __init__(self, secret: bytes, ttl: float) -> None:
        self._secret = secret
        self._ttl = ttl
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def key(self, username: str, password: str, address: str | None) -> bytes:
        """Per client address too: a success from one address must not answer the same
        credentials from an address whose sign-ins are locked (portus_fab.auth.lockout)."""
        # Unambiguous: a Basic username cannot contain ':' (the first colon ends it), and no
        # address a server passes contains a newline.
        message = (address or "").encode() + b"\n" + username.encode() + b":" + password.encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def bearer_key(self, secret: str) -> bytes:
        # Hex holds no ':' and every Basic message one: a secret sent alone (a refresh token)
        # shares its key with no username and password, whatever the client sent.
        message = b"bearer " + secret.encode().hex().encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def lookup(self, key: bytes, epoch: int) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None or entry.epoch != epoch or entry.expires < time.monotonic():
            return None
        # An expiry changes no data, so no epoch bump announces it: check it on every hit.
        until = entry.principal.expires_at
        if until is not None and until <= utcnow():
            return None
        return entry.principal

    def remember(self, key: bytes, principal: Principal, epoch: int) -> None:
        if self._ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._entries = with_room(self._entries, lambda entry: entry.expires >= now)
            self._entries[key] = _Entry(principal, epoch, now + self._ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def same_username(given: str, username: str | None, *, case_insensitive: bool) -> bool:
    """Whether `given` names the user `username`, compared as FAB's login compares them."""
    if username is None:
        return False
    return given.lower() == username.lower() if case_insensitive else given == username


def load_user(session: Session, username: str, *, case_insensitive: bool = True) -> User | None:
    """The user with everything the policy needs (roles, groups' roles) in constant queries.

    Matches usernames the way FAB's own login does (AUTH_USERNAME_CI, on by default), so that
    whoever logs in to the web UI as `Alice` can `docker login -u Alice` too.
    """
    match = (
        func.lower(User.username) == username.lower()
        if case_insensitive
        else User.username == username
    )
    users = session.scalars(
        select(User)
        .where(match)
        .limit(2)
        .options(selectinload(User.roles), selectinload(User.groups).selectinload(Group.roles))
    ).all()
    return users[0] if len(users) == 1 else None  # two case variants: ambiguous, refuse


def role_names(user: User) -> set[str]:
    names = {role.name for role in user.roles}
    names.update(role.name for group in getattr(user, "groups", []) for role in group.roles)
    return names


def principal_for(user: User, admin_role: str) -> Principal:
    return Principal(
        PrincipalKind.USER,
        user_id=user.id,
        username=user.username,
        is_admin=admin_role in role_names(user),
        active=bool(user.active),
    )


def check_password(
    session: Session,
    username: str,
    password: str,
    *,
    admin_role: str,
    fake_hash: str,
    case_insensitive: bool,
) -> Principal | None:
    """The user these credentials prove (active, with that password), or None."""
    if not username or is_null_password(password):
        return None
    user = load_user(session, username, case_insensitive=case_insensitive)
    if user is None or not user.active or not user.password:
        # Spend the same time as a real check so response times do not reveal which users exist.
        check_password_hash(fake_hash, password)
        return None
    if not check_password_hash(user.password, password):
        return None
    return principal_for(user, admin_role)
