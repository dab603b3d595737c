"""Changing who may do what: namespaces, teams, members, grants. Every surface that changes them
(CLI, FAB screens, later the REST API) goes through these functions, so the rules are checked in
one place. They raise portus_fab.errors (each surface maps those once), flush and never commit:
the entry point owns the transaction. Every change is recorded by portus_fab.audit.changes at
flush time.

Adding is adding on every surface: a user already in the team, or a principal that already has
a grant on the namespace, is a Conflict (the screens' "add" and `portus team add-member` alike);
changing a role is its own operation (`set_member_role`; `set_grant`, behind `portus grant`,
gives or changes a grant and says so).
"""

from __future__ import annotations

import re

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from portus_fab import audit
from portus_fab.access.policy import Policy, Principal
from portus_fab.audit import Kind, Target, TargetType
from portus_fab.errors import Conflict, Forbidden, Invalid, NotFound
from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Activity,
    Grant,
    Namespace,
    NamespaceKind,
    PolicyEpoch,
    Repository,
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
        raise Invalid(f"unknown role {role!r}: viewer, contributor or owner") from None


def validate_description(text: str | None) -> str | None:
    if text is not None and len(text) > DESCRIPTION_MAX:
        return f"a description has at most {DESCRIPTION_MAX} characters, not {len(text)}"
    return None


def check(problem: str | None) -> None:
    """Raise the rule a validator says is broken, if any."""
    if problem:
        raise Invalid(problem)


def find_namespace(session: Session, name: str) -> Namespace:
    namespace = session.scalar(select(Namespace).where(Namespace.name == name))
    if namespace is None:
        raise NotFound(f"no namespace named {name!r}")
    return namespace


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def find_team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise NotFound(f"no team named {name!r}")
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
        raise Conflict(f"a namespace named {name!r} already exists")
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


def check_deletable(session: Session, namespace: Namespace) -> None:
    if namespace.kind == NamespaceKind.GLOBAL:
        raise Conflict("the global namespace cannot be deleted")
    if session.scalar(
        select(Repository.id).where(Repository.namespace_id == namespace.id).limit(1)
    ):
        raise Conflict(f"namespace {namespace.name} still holds repositories: delete them first")


def delete_namespace(session: Session, name: str) -> None:
    namespace = find_namespace(session, name)
    check_deletable(session, namespace)
    session.delete(namespace)
    session.flush()


def check_edits_repository(session: Session, principal: Principal, repository: Repository) -> None:
    """A repository's description is its namespace's to manage (the policy's `decide_manage`)."""
    decision = Policy(session).manage_namespace(principal, repository.namespace_id)
    if not decision.allowed:
        raise Forbidden(f"only the namespace's owners edit its repositories: {decision.reason}")


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
        raise Conflict(f"a team named {name!r} already exists")
    team = Team(name=name, description=description)
    session.add(team)
    session.flush()
    return team


def find_member(session: Session, team: Team, user: User) -> TeamMember:
    member = existing_member(session, team, user)
    if member is None:
        raise NotFound(f"{user.username} is not in team {team.name}")
    return member


def existing_member(
    session: Session, team: Team, user: User, *, other_than: int | None = None
) -> TeamMember | None:
    # No autoflush: a screen's half-built row (in the session through its backrefs) must not be
    # flushed by this lookup, which would turn a duplicate into an IntegrityError.
    query = select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
    if other_than is not None:
        query = query.where(TeamMember.id != other_than)
    with session.no_autoflush:
        return session.scalar(query)


def check_new_member(
    session: Session, team: Team, user: User, *, other_than: int | None = None
) -> None:
    """A user is in a team once: a second row would make their role ambiguous."""
    member = existing_member(session, team, user, other_than=other_than)
    if member is not None:
        raise Conflict(f"{user.username} is already in team {team.name}: edit their role")


def add_member(session: Session, team: Team, user: User, role: Role | str) -> TeamMember:
    """Add the user to the team; a Conflict if they are in it already."""
    role = parse_role(role)
    check_new_member(session, team, user)
    member = TeamMember(team=team, user=user, role=role)
    session.add(member)
    session.flush()
    return member


def check_hand_edit(member: TeamMember) -> None:
    """A membership synced from a directory's groups changes there, never by hand: an edit here
    would disagree with the directory until the next sign-in silently undid it."""
    if member.source is not None:
        raise Conflict(
            f"{member.user.username}'s membership of team {member.team.name} comes from the "
            f"directory ({member.source}); change it there"
        )


def check_role_change(session: Session, member: TeamMember, before: Role, after: Role) -> None:
    if before == Role.OWNER and after != Role.OWNER:
        check_keeps_an_owner(session, member.team, leaving=member)


def set_member_role(session: Session, team: Team, user: User, role: Role | str) -> TeamMember:
    """Change a member's role; a team keeps at least one owner."""
    role = parse_role(role)
    member = find_member(session, team, user)
    check_hand_edit(member)
    check_role_change(session, member, member.role, role)
    member.role = role
    session.flush()
    return member


def check_keeps_an_owner(session: Session, team: Team, leaving: TeamMember) -> None:
    """A team whose owners are all gone could never be managed by its members again."""
    with session.no_autoflush:  # the stored owners, not a screen's unsaved change
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
        raise Conflict(f"{leaving.user.username} is the last owner of team {team.name}")


def check_member_edit(session: Session, member: TeamMember) -> None:
    """A screen's edit of a member row, its new values already on `member`: still one row per
    user and team, and the team it leaves or demotes an owner in keeps one."""
    check_hand_edit(member)
    check_new_member(session, member.team, member.user, other_than=member.id)
    with session.no_autoflush:
        stored_team_id, stored_role = session.execute(
            select(TeamMember.team_id, TeamMember.role).where(TeamMember.id == member.id)
        ).one()
    if stored_role == Role.OWNER and (
        member.role != Role.OWNER or member.team.id != stored_team_id
    ):
        check_keeps_an_owner(session, session.get(Team, stored_team_id), leaving=member)


def check_removal(session: Session, member: TeamMember) -> None:
    check_hand_edit(member)
    if member.role == Role.OWNER:
        check_keeps_an_owner(session, member.team, leaving=member)


def remove_member(session: Session, team: Team, user: User) -> None:
    member = find_member(session, team, user)
    check_removal(session, member)
    session.delete(member)
    session.flush()


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


def check_new_grant(
    session: Session,
    namespace: Namespace,
    *,
    user: User | None,
    team: Team | None,
    other_than: int | None = None,
) -> None:
    """One grant per principal and namespace: the screens add and edit grants one row each."""
    with session.no_autoflush:  # see `existing_member`
        duplicate = existing_grant(session, namespace, user=user, team=team, other_than=other_than)
    if duplicate is not None:
        raise Conflict(
            f"{duplicate.principal_name} already has a grant on {namespace}: edit that one"
        )


def remove_grant(
    session: Session, namespace: Namespace, *, user: User | None = None, team: Team | None = None
) -> None:
    grant = existing_grant(session, namespace, user=user, team=team)
    if grant is None:
        who = f"user {user.username}" if user is not None else f"team {getattr(team, 'name', '?')}"
        raise NotFound(f"{who} has no grant on {namespace}")
    session.delete(grant)
    session.flush()


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
        raise Invalid("a grant is for exactly one user or one team")
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
    # Inside a flush the ORM sees neither row: recorded here, as one record with its owner.
    details = {"kind": NamespaceKind.PERSONAL.value, "visibility": Visibility.PRIVATE.value}
    connection.execute(
        insert(Activity.__table__).values(
            audit.entry(
                Kind.NAMESPACE_CREATED,
                target=Target(TargetType.NAMESPACE, name),
                details={**details, "owner": username},
            )
        )
    )
    return name
