"""Reactions that must hold however the data is changed.

- Users: every way a user is created or removed (FAB's admin screen, its REST API,
  `flask fab create-user`, self-registration, LDAP and OAuth) gets its personal namespace or loses
  its rights. FAB's signals only fire from `sm.add_user`, so these listen on the ORM mapper.
- The policy epoch: any flush that can change a policy decision bumps it (portus_fab.models.epoch).
- The audit record of every change to namespaces, teams, members and grants
  (portus_fab.audit.changes).
"""

from __future__ import annotations

from typing import Any

from flask_appbuilder.security.sqla.models import Group, Role, User
from sqlalchemy import Connection, delete, event, inspect, update
from sqlalchemy.orm import Session

from portus_fab.access.management import NAMESPACE_NAME_RE, create_personal_namespace
from portus_fab.access.policy import INTERNAL_IDENTITY
from portus_fab.audit import changes
from portus_fab.models import (
    AccessToken,
    Namespace,
    RefreshToken,
    Robot,
    RobotGrant,
    Team,
    TeamMember,
)
from portus_fab.models.epoch import bump_epoch
from portus_fab.models.namespaces import Grant
from portus_fab.models.robots import ROBOT_NAME_RE, SEPARATOR


def _refuse_reserved_name(_mapper: Any, _connection: Connection, user: User) -> None:
    if user.username == INTERNAL_IDENTITY:
        raise ValueError(f"the username {INTERNAL_IDENTITY!r} is reserved for portus_fab itself")
    namespace, separator, name = (user.username or "").partition(SEPARATOR)
    if separator and NAMESPACE_NAME_RE.fullmatch(namespace) and ROBOT_NAME_RE.fullmatch(name):
        # Tokens, registry events and the audit record name a principal by this one string.
        raise ValueError(f"the username {user.username!r} has the form of a robot account's")


def _create_personal_namespace(_mapper: Any, connection: Connection, user: User) -> None:
    create_personal_namespace(connection, user.id, user.username)


def _forget_user(_mapper: Any, connection: Connection, user: User) -> None:
    # SQLite does not enforce ON DELETE by default: remove the user's rights explicitly. The
    # personal namespace stays (it may hold images) with no owner but admins.
    connection.execute(delete(Grant.__table__).where(Grant.__table__.c.user_id == user.id))
    tokens = AccessToken.__table__
    connection.execute(delete(tokens).where(tokens.c.user_id == user.id))
    # Bumped here too: a deleted user's cached credentials (a password, a token) must fail at
    # the next request, and the flush hook below does not see a user deleted this way.
    bump_epoch(connection)
    refresh = RefreshToken.__table__
    connection.execute(delete(refresh).where(refresh.c.user_id == user.id))
    connection.execute(
        delete(TeamMember.__table__).where(TeamMember.__table__.c.user_id == user.id)
    )
    connection.execute(
        update(Namespace.__table__)
        .where(Namespace.__table__.c.user_id == user.id)
        .values(user_id=None)
    )


def install() -> None:
    """Idempotent: listeners are global (the User mapper, every Session), shared by every app
    in the process."""
    for name, listener in (
        ("before_insert", _refuse_reserved_name),
        ("after_insert", _create_personal_namespace),
        ("before_delete", _forget_user),
    ):
        if not event.contains(User, name, listener):
            event.listen(User, name, listener, propagate=True)
    if not event.contains(Session, "after_flush", _bump_policy_epoch):
        event.listen(Session, "after_flush", _bump_policy_epoch)
    changes.install()


# Changes to these can change a decision of the policy (who is admin, who holds which role).
# A robot's secret, expiry, disabled flag and grants too: a rotated, disabled or deleted robot
# is refused at its next token request in every process.
# An access token's last use is written by a Core statement (auth/access_tokens.py), never here.
_POLICY_MODELS = (Role, Group, Namespace, Grant, Team, TeamMember, Robot, RobotGrant, AccessToken)
_USER_POLICY_ATTRIBUTES = ("username", "password", "active", "roles", "groups")


def _affects_policy(instance: object) -> bool:
    if isinstance(instance, User):
        state = inspect(instance)
        if state.transient or state.pending or state.deleted or state.was_deleted:
            return True
        # FAB writes login statistics on every web login: those must not flush every cache.
        return any(state.attrs[name].history.has_changes() for name in _USER_POLICY_ATTRIBUTES)
    if isinstance(instance, RefreshToken):
        # One is issued at every `docker login`, which changes no decision: only a revocation
        # does (its last use is a Core statement, auth/refresh.py, never seen here).
        state = inspect(instance)
        revoked = state.attrs["revoked_at"].history.has_changes()
        return revoked or state.deleted or state.was_deleted
    return isinstance(instance, _POLICY_MODELS)


def _bump_policy_epoch(session: Session, _context: Any) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(_affects_policy(instance) for instance in changed):
        bump_epoch(session)
