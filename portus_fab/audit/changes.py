"""Changes to namespaces, teams, members and grants (robot grants too) are recorded at flush
time, whichever way they are made: FAB's screens write through their own SQLAInterface, the CLI
and the REST API through portus_fab.access.management, and a flush sees them all. One record per
changed row per flush, added to the flush itself, so it commits or rolls back with the change.

Rows written without the ORM (the personal namespace made inside a user's flush, a user's grants
removed with the user) are recorded where they are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from portus_fab.audit import Kind, Target, TargetType, record
from portus_fab.models import Grant, Namespace, Robot, RobotGrant, Team, TeamMember


def _changed(instance: object, attributes: Iterable[str]) -> dict[str, list[Any]]:
    """{attribute: [before, after]} for the attributes whose value really changed."""
    state = inspect(instance)
    changes = {}
    for name in attributes:
        history = state.attrs[name].history
        if history.added or history.deleted:
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
            if before != after:
                changes[name] = [_plain(before), _plain(after)]
    return changes


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # enums as their stored values


def _related(session: Session, instance: object, name: str, model: type, key: int | None) -> Any:
    """A many-to-one as it was set, unset (an orphan being deleted) or only given by its id (a
    pending row does not load relationships)."""
    value = getattr(instance, name)
    if value is None:
        deleted = inspect(instance).attrs[name].history.deleted
        value = deleted[0] if deleted else None
    if value is None and key is not None:
        value = session.get(model, key)
    return value


def _username(session: Session, instance: TeamMember | Grant) -> str:
    user = _related(session, instance, "user", User, instance.user_id)
    return user.username if user is not None else "?"


def _grantee(session: Session, grant: Grant) -> dict[str, str]:
    team = _related(session, grant, "team", Team, grant.team_id)
    if team is not None:
        return {"team": team.name}
    return {"user": _username(session, grant)}


def _namespace(session: Session, namespace: Namespace, how: str) -> None:
    target = Target(TargetType.NAMESPACE, namespace.name)
    if how == "new":
        details = {"kind": _plain(namespace.kind), "visibility": _plain(namespace.visibility)}
        record(session, Kind.NAMESPACE_CREATED, target=target, details=details)
    elif how == "deleted":
        record(session, Kind.NAMESPACE_DELETED, target=target)
    elif changes := _changed(namespace, ("visibility", "description")):
        kind = Kind.VISIBILITY_CHANGED if "visibility" in changes else Kind.NAMESPACE_CHANGED
        record(session, kind, target=target, details=changes)


def _team(session: Session, team: Team, how: str) -> None:
    target = Target(TargetType.TEAM, team.name)
    if how == "new":
        record(session, Kind.TEAM_CREATED, target=target)
    elif how == "deleted":
        record(session, Kind.TEAM_DELETED, target=target)
    elif changes := _changed(team, ("description",)):
        record(session, Kind.TEAM_CHANGED, target=target, details=changes)


# What a row that gives a role records when it is added, removed, or its role changes.
_MEMBER_KINDS = (Kind.MEMBER_ADDED, Kind.MEMBER_REMOVED, Kind.MEMBER_ROLE_CHANGED)
_GRANT_KINDS = (Kind.GRANT_ADDED, Kind.GRANT_REMOVED, Kind.GRANT_CHANGED)


def _role_row(
    session: Session,
    row: Any,
    how: str,
    target: Target,
    details: dict[str, Any],
    kinds: tuple[Kind, Kind, Kind],
) -> None:
    added, removed, changed = kinds
    if how == "new":
        record(session, added, target=target, details=details)
    elif how == "deleted":
        record(session, removed, target=target, details=details)
    elif changes := _changed(row, ("role",)):
        details["previous_role"] = changes["role"][0]
        record(session, changed, target=target, details=details)


def _member(session: Session, member: TeamMember, how: str) -> None:
    team = _related(session, member, "team", Team, member.team_id)
    target = Target(TargetType.TEAM, team.name)
    details: dict[str, Any] = {"user": _username(session, member), "role": _plain(member.role)}
    _role_row(session, member, how, target, details, _MEMBER_KINDS)


def _grant(session: Session, grant: Grant, how: str) -> None:
    namespace = _related(session, grant, "namespace", Namespace, grant.namespace_id)
    target = Target(TargetType.NAMESPACE, namespace.name)
    details: dict[str, Any] = {**_grantee(session, grant), "role": _plain(grant.role)}
    _role_row(session, grant, how, target, details, _GRANT_KINDS)


def _robot_grant(session: Session, grant: RobotGrant, how: str) -> None:
    namespace = _related(session, grant, "namespace", Namespace, grant.namespace_id)
    robot = _related(session, grant, "robot", Robot, grant.robot_id)
    target = Target(TargetType.NAMESPACE, namespace.name)
    details: dict[str, Any] = {"robot": robot.full_name, "role": _plain(grant.role)}
    _role_row(session, grant, how, target, details, _GRANT_KINDS)


_RECORDERS = {
    Namespace: _namespace,
    Team: _team,
    TeamMember: _member,
    Grant: _grant,
    RobotGrant: _robot_grant,
}


def _record_changes(session: Session, _context: Any, _instances: Any) -> None:
    for how, instances in (
        ("new", session.new),
        ("dirty", session.dirty),
        ("deleted", session.deleted),
    ):
        for instance in list(instances):
            recorder = _RECORDERS.get(type(instance))
            if recorder is not None:
                recorder(session, instance, how)


def install() -> None:
    """Idempotent: the listener is global (every Session), shared by every app in the process."""
    if not event.contains(Session, "before_flush", _record_changes):
        event.listen(Session, "before_flush", _record_changes)
