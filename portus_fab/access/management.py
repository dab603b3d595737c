"""Changing who may do what: namespaces, teams, members, grants. Every surface that changes them
(CLI, FAB screens) goes through these functions, so the rules are checked in one place."""

from __future__ import annotations

import re

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Grant,
    Namespace,
    NamespaceKind,
    PolicyEpoch,
    Role,
    Team,
    TeamMember,
    Visibility,
)
from portus_fab.models.epoch import EPOCH_ROW
from portus_fab.registry.names import NAMESPACE_MAX, is_registry_host, slugify_namespace

# A registry path component without dots: docker reads a first component with a dot as a
# registry host ("my.team/app" would be pulled from the host "my.team").
NAMESPACE_NAME_RE = re.compile(r"[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*")
TEAM_NAME_MAX = 128
TEAM_NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9 ._-]{{0,{TEAM_NAME_MAX - 1}}}")
# Descriptions are a few paragraphs shown on the explore and repository pages; their columns are
# unbounded TEXT, so without a limit one form post could store megabytes.
DESCRIPTION_MAX = 2000


class ManagementError(ValueError):
    """A change that breaks a rule; the message is shown to the person who asked for it."""


def validate_namespace_name(name: str) -> str | None:
    if not name:
        return "a namespace name is required"
    if len(name) > NAMESPACE_MAX:
        return f"a namespace name has at most {NAMESPACE_MAX} characters"
    if not NAMESPACE_NAME_RE.fullmatch(name):
        return (
            f"invalid namespace name {name!r}: lowercase letters and digits, separated by "
            "'_', '__' or dashes (no dots: docker would read them as a registry host)"
        )
    if is_registry_host(name):
        return f"{name!r} cannot name a namespace: docker would read it as a registry host"
    return None


def validate_visibility(
    kind: NamespaceKind | str | None, visibility: Visibility | str
) -> str | None:
    try:
        visibility = Visibility(visibility)
    except ValueError:
        return f"unknown visibility {visibility!r}: public, protected or private"
    if kind == NamespaceKind.GLOBAL and visibility == Visibility.PRIVATE:
        return "the global namespace cannot be private: it is public or protected"
    return None


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ManagementError(f"unknown role {role!r}: viewer, contributor or owner") from None


def validate_description(text: str | None) -> str | None:
    if text is not None and len(text) > DESCRIPTION_MAX:
        return f"a description has at most {DESCRIPTION_MAX} characters, not {len(text)}"
    return None


def check(problem: str | None) -> None:
    """Raise the rule a validator says is broken, if any."""
    if problem:
        raise ManagementError(problem)


def find_namespace(session: Session, name: str) -> Namespace:
    namespace = session.scalar(select(Namespace).where(Namespace.name == name))
    if namespace is None:
        raise ManagementError(f"no namespace named {name!r}")
    return namespace


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ManagementError(f"no user named {username!r}")
    return user


def find_team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise ManagementError(f"no team named {name!r}")
    return team


def create_namespace(
    session: Session,
    name: str,
    *,
    visibility: Visibility | str = Visibility.PRIVATE,
    description: str = "",
    kind: NamespaceKind = NamespaceKind.TEAM,
) -> Namespace:
    check(validate_namespace_name(name))
    check(validate_visibility(kind, visibility))
    check(validate_description(description))
    if session.scalar(select(Namespace.id).where(Namespace.name == name)) is not None:
        raise ManagementError(f"a namespace named {name!r} already exists")
    namespace = Namespace(
        name=name, visibility=Visibility(visibility), description=description, kind=kind
    )
    session.add(namespace)
    session.flush()
    return namespace


def set_visibility(session: Session, name: str, visibility: Visibility | str) -> Namespace:
    namespace = find_namespace(session, name)
    check(validate_visibility(namespace.kind, visibility))
    namespace.visibility = Visibility(visibility)
    session.flush()
    return namespace


def ensure_policy_epoch(session: Session) -> None:
    if session.get(PolicyEpoch, EPOCH_ROW) is None:
        session.add(PolicyEpoch(id=EPOCH_ROW, value=0))
        session.flush()


def ensure_global_namespace(session: Session) -> Namespace:
    namespace = session.scalar(select(Namespace).where(Namespace.kind == NamespaceKind.GLOBAL))
    if namespace is None:
        namespace = Namespace(
            name=GLOBAL_NAMESPACE,
            kind=NamespaceKind.GLOBAL,
            visibility=Visibility.PUBLIC,
            description="Repositories without a namespace, e.g. 'busybox'. Owned by admins.",
        )
        session.add(namespace)
        session.flush()
    return namespace


def validate_team_name(name: str) -> str | None:
    if len(name or "") > TEAM_NAME_MAX:  # said first: the message below repeats the name
        return f"a team name has at most {TEAM_NAME_MAX} characters"
    if not TEAM_NAME_RE.fullmatch(name or ""):
        return (
            f"invalid team name {name!r}: letters, digits, space, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return None


def create_team(session: Session, name: str, description: str = "") -> Team:
    check(validate_team_name(name))
    check(validate_description(description))
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise ManagementError(f"a team named {name!r} already exists")
    team = Team(name=name, description=description)
    session.add(team)
    session.flush()
    return team


def set_member(session: Session, team: Team, user: User, role: Role | str) -> TeamMember:
    """Add the user to the team, or change their role in it."""
    role = parse_role(role)
    member = session.scalar(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
    )
    if member is None:
        member = TeamMember(team=team, user=user, role=role)
        session.add(member)
    else:
        if member.role == Role.OWNER and role != Role.OWNER:
            check_keeps_an_owner(session, team, leaving=member)
        member.role = role
    session.flush()
    return member


def check_keeps_an_owner(session: Session, team: Team, leaving: TeamMember) -> None:
    """A team whose owners are all gone could never be managed by its members again."""
    owners = session.scalar(
        select(func.count())
        .select_from(TeamMember)
        .where(
            TeamMember.team_id == team.id,
            TeamMember.role == Role.OWNER,
            TeamMember.id != leaving.id,
        )
    )
    if not owners:
        raise ManagementError(f"{leaving.user.username} is the last owner of team {team.name}")


def set_grant(
    session: Session,
    namespace: Namespace,
    role: Role | str,
    *,
    user: User | None = None,
    team: Team | None = None,
) -> Grant:
    """Give a user or a team (exactly one) a role on a namespace, or change the role it has."""
    role = parse_role(role)
    grant = existing_grant(session, namespace, user=user, team=team)
    if grant is None:
        grant = Grant(namespace=namespace, user=user, team=team, role=role)
        session.add(grant)
    else:
        grant.role = role
    session.flush()
    return grant


def existing_grant(
    session: Session,
    namespace: Namespace,
    *,
    user: User | None,
    team: Team | None,
    other_than: int | None = None,
) -> Grant | None:
    """The grant the principal (exactly one user or one team) already has on the namespace."""
    if (user is None) == (team is None):
        raise ManagementError("a grant is for exactly one user or one team")
    principal = Grant.user_id == user.id if user is not None else Grant.team_id == team.id
    query = select(Grant).where(Grant.namespace_id == namespace.id, principal)
    if other_than is not None:
        query = query.where(Grant.id != other_than)
    return session.scalar(query)


def personal_namespace_name(connection: Connection, username: str) -> str:
    """The username made valid for the registry; on a clash the first free `-2`, `-3`, ...

    A name docker would read as a registry host (`localhost`) counts as taken, so the user
    `localhost` gets `localhost-2`: the token service would strip `localhost/` from the scope.
    Deterministic: the same username against the same existing names always gives the same name.
    """
    base = slugify_namespace(username.replace(".", "-"))[: NAMESPACE_MAX - 8].rstrip("_-")
    taken = set(
        connection.scalars(
            select(Namespace.name).where(
                (Namespace.name == base) | Namespace.name.startswith(f"{base}-")
            )
        )
    )
    if base not in taken and not is_registry_host(base):
        return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"


def create_personal_namespace(connection: Connection, user_id: int, username: str) -> str:
    """Runs inside the flush that inserts the user, so it works for every way users are made."""
    name = personal_namespace_name(connection, username)
    namespace_id = connection.execute(
        insert(Namespace.__table__)
        .values(
            name=name,
            description=f"Personal namespace of {username}",
            visibility=Visibility.PRIVATE.value,
            kind=NamespaceKind.PERSONAL.value,
            user_id=user_id,
        )
        .returning(Namespace.__table__.c.id)
    ).scalar_one()
    connection.execute(
        insert(Grant.__table__).values(
            namespace_id=namespace_id, user_id=user_id, role=Role.OWNER.value
        )
    )
    return name
