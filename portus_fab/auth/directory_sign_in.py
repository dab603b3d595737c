"""Signing in with a directory (LDAP) password: one path for the web sign-in and the token
endpoint. The directory proves the password (portus_fab.auth.directory); `provision` then finds
or creates the FAB user the way FAB's `auth_user_ldap` does (AUTH_USER_REGISTRATION,
AUTH_USER_REGISTRATION_ROLE, AUTH_ROLES_MAPPING, AUTH_ROLES_SYNC_AT_LOGIN,
AUTH_GROUPS_SYNC_AT_LOGIN), keeps names and email in step, and makes the user's team memberships
from the directory match their groups (PORTUS_GROUP_TEAMS). The personal namespace of a new user
comes from the User insert hook (portus_fab.access.hooks), whichever path created it.

The token endpoint must not bind on every pull. Its credential cache (epoch-keyed) answers a
returning client, but any policy change empties it; `DirectoryProofs` remembers, NOT per epoch,
when the directory last said yes to a username and password, so after an epoch bump the user is
read from the database without a bind, and with the directory down a client it said yes to
keeps working. Both live PORTUS_CREDENTIAL_CACHE_TTL: the longest a changed password, a disabled
directory account or a removed group goes unnoticed by the token endpoint. The web sign-in
always asks the directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portus_fab.access.group_teams import GroupTeams, sync_group_teams
from portus_fab.audit.origin import Origin, acting, current_origin
from portus_fab.auth.credentials import load_user, with_room
from portus_fab.auth.directory import Directory, DirectoryIdentity
from portus_fab.models.namespaces import utcnow
from portus_fab.models.transaction import transaction

log = logging.getLogger(__name__)

SOURCE = "ldap"  # TeamMember.source of the memberships the directory's groups give


class DirectoryProofs:
    """When the directory last said yes to a username and password, under an HMAC of them."""

    def __init__(self, secret: bytes, ttl: float, *, case_insensitive: bool) -> None:
        self._secret = secret
        self._ttl = dt.timedelta(seconds=ttl)
        self._case_insensitive = case_insensitive
        self._until: dict[bytes, dt.datetime] = {}
        self._lock = threading.Lock()

    def key(self, username: str, password: str) -> bytes:
        name = username.lower() if self._case_insensitive else username
        # Its own prefix: no key of the credential cache (same secret) can equal one of these.
        message = b"directory\n" + name.encode() + b":" + password.encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def valid_until(self, key: bytes) -> dt.datetime | None:
        """Until when the last yes for `key` holds (naive UTC), None if there is none now."""
        until = self._until.get(key)
        return until if until is not None and until > utcnow() else None

    def remember(self, key: bytes) -> dt.datetime | None:
        """Record a yes now; until when it holds (None: remembered not at all, TTL 0)."""
        if not self._ttl:
            return None
        now = utcnow()
        with self._lock:
            self._until = with_room(self._until, lambda until: until > now)
            until = self._until[key] = now + self._ttl
        return until


@dataclass(frozen=True, slots=True)
class Registration:
    """FAB's settings for users a sign-in creates and their roles, read once."""

    enabled: bool  # AUTH_USER_REGISTRATION
    role: str  # AUTH_USER_REGISTRATION_ROLE
    sync_roles: bool  # AUTH_ROLES_SYNC_AT_LOGIN
    sync_groups: bool  # AUTH_GROUPS_SYNC_AT_LOGIN (FAB's own groups)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Registration:
        return cls(
            enabled=bool(config.get("AUTH_USER_REGISTRATION", False)),
            role=config.get("AUTH_USER_REGISTRATION_ROLE", "Public"),
            sync_roles=bool(config.get("AUTH_ROLES_SYNC_AT_LOGIN", False)),
            sync_groups=bool(config.get("AUTH_GROUPS_SYNC_AT_LOGIN", False)),
        )


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    proof_until: dt.datetime | None  # when the directory's yes stops counting (token endpoint)


class DirectorySignIn:
    """The directory, FAB's security manager (its role mapping and `add_user`, so FAB's user
    signals fire) and the group mapping, for one app."""

    def __init__(
        self,
        directory: Directory,
        security_manager: Any,
        registration: Registration,
        group_teams: GroupTeams,
        proofs: DirectoryProofs,
        *,
        case_insensitive: bool,
    ) -> None:
        self.directory = directory
        self.proofs = proofs
        self._sm = security_manager
        self._registration = registration
        self._group_teams = group_teams
        self._case_insensitive = case_insensitive

    @classmethod
    def from_app(
        cls, app: Flask, *, timeout: float, proof_ttl: float, group_teams: GroupTeams
    ) -> DirectorySignIn | None:
        """The sign-in of an AUTH_LDAP app (None for any other AUTH_TYPE), from FAB's settings
        read now; call after FAB's security manager exists."""
        config = app.config
        directory = Directory.from_config(config, timeout=timeout)
        if directory is None:
            return None
        case_insensitive = config.get("AUTH_USERNAME_CI", True)
        return cls(
            directory,
            app.appbuilder.sm,
            Registration.from_config(config),
            group_teams,
            DirectoryProofs(
                config["SECRET_KEY"].encode(), proof_ttl, case_insensitive=case_insensitive
            ),
            case_insensitive=case_insensitive,
        )

    def sign_in(self, session: Session, username: str, password: str) -> User | None:
        """Ask the directory, then provision: the user, or None for a wrong password, an
        unknown or disabled account (here or there). Raises DirectoryUnreachable."""
        known = load_user(session, username, case_insensitive=self._case_insensitive)
        if known is not None and not known.active:
            return None  # disabled here: as FAB, not worth asking the directory
        identity = self.directory.authenticate(username, password)
        if identity is None:
            return None
        return self.provision(session, identity)

    def token_sign_in(self, session: Session, username: str, password: str) -> SignedIn | None:
        """The token endpoint's sign-in: the database alone while a yes of the directory for
        these credentials holds, else `sign_in`. Raises DirectoryUnreachable."""
        key = self.proofs.key(username, password)
        until = self.proofs.valid_until(key)
        if until is not None:
            user = load_user(session, username, case_insensitive=self._case_insensitive)
            if user is not None:  # deleted here since: the directory may create it again
                return SignedIn(user, until) if user.active else None
        user = self.sign_in(session, username, password)
        if user is None:
            return None
        return SignedIn(user, self.proofs.remember(key))

    def provision(self, session: Session, identity: DirectoryIdentity) -> User | None:
        """Find or create the user the directory vouched for and bring it in step with the
        directory (names, email, mapped roles, teams), in one transaction. None when there is
        no such user and none may be created, or it is disabled here."""
        # What the sign-in records (the personal namespace, team memberships) the user did, by
        # signing in: before it, the request's origin names no one.
        with acting(Origin(identity.username, current_origin().address)):
            try:
                return self._provision(session, identity)
            except IntegrityError:
                # A sign-in at the same moment created the same team first (two people whose
                # group gives a team not made yet): once more, it is there to be found.
                return self._provision(session, identity)

    def _provision(self, session: Session, identity: DirectoryIdentity) -> User | None:
        with transaction(session):
            user = load_user(session, identity.username, case_insensitive=self._case_insensitive)
            if user is None:
                # FAB's add_user swallows its error: another sign-in may have created the same
                # user at the same moment (a client asking for several scopes' tokens at once).
                user = self._create(identity) or load_user(
                    session, identity.username, case_insensitive=self._case_insensitive
                )
                if user is None:
                    return None
            if not user.active:
                return None
            # Sign-ins of one person at once (a client asking for several scopes' tokens at
            # once) sync one after the other, each seeing what the last one did: the user's row
            # stays locked until this commits (PostgreSQL; SQLite has one writer anyway).
            session.execute(select(User.id).where(User.id == user.id).with_for_update())
            self._update(user, identity)
            if identity.dn is not None:  # groups were read
                sync_group_teams(session, user, identity.groups, self._group_teams, SOURCE)
        return user

    def _roles(self, identity: DirectoryIdentity) -> set[Any]:
        """FAB's `_ldap_calculate_user_roles`: the mapped roles, and the registration role."""
        roles = set(self._sm.get_roles_from_keys(list(identity.groups)))
        if self._registration.enabled:
            role = self._sm.find_role(self._registration.role)
            if role is None:
                log.warning(
                    "AUTH_USER_REGISTRATION_ROLE %r does not exist", self._registration.role
                )
            else:
                roles.add(role)
        return roles

    def _create(self, identity: DirectoryIdentity) -> User | None:
        # As FAB: only with registration on, and only for an entry that was read.
        if not self._registration.enabled or identity.dn is None:
            return None
        extra = {}
        if self._registration.sync_groups:
            extra["groups"] = self._sm.get_groups_from_keys(list(identity.groups))
        user = self._sm.add_user(
            username=identity.username,
            first_name=identity.first_name,
            last_name=identity.last_name,
            email=identity.email or f"{identity.username}@email.notfound",
            role=list(self._roles(identity)),
            commit=False,  # the transaction commits it, with its teams
            **extra,
        )
        return user or None  # FAB logged why and rolled back

    def _update(self, user: User, identity: DirectoryIdentity) -> None:
        """Write only what changed: role changes bump the policy epoch, names do not."""
        for field, value in (
            ("first_name", identity.first_name),
            ("last_name", identity.last_name),
            ("email", identity.email),
        ):
            if value and getattr(user, field) != value:
                setattr(user, field, value)
        if identity.dn is None:
            return  # nothing read to sync from (FAB syncs only from a read entry too)
        if self._registration.sync_roles:
            roles = self._roles(identity)
            if set(user.roles) != roles:
                user.roles = list(roles)
        if self._registration.sync_groups:
            groups = self._sm.get_groups_from_keys(list(identity.groups))
            if set(user.groups) != set(groups):
                user.groups = groups
