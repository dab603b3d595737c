"""THE authorization policy. Nothing else in portus_fab decides who may do what.

It answers two questions that must always agree:
- `Policy.explain(principal, repository)`: which actions (pull, push, delete) a principal may
  take on a repository, with the role, the grants it comes from and a reason for every refusal;
- `Policy.visible_namespaces(principal)`: the namespaces whose repositories the principal may pull,
  as a SQL condition every list, page, search and API answer filters with.

And two more that agree the same way: who may manage a namespace or a team
(`Policy.manage_namespace`, `Policy.manage_team`, decided by `decide_manage`) and the rows the
management screens show (`managed_namespaces`, `managed_teams`).

The decision itself (`decide`) is a pure function of plain facts so that the rights table can be
tested without a database; the methods of `Policy` only gather those facts.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, and_, false, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Grant,
    Namespace,
    Robot,
    RobotGrant,
    Role,
    TeamMember,
    Visibility,
)
from portus_fab.models.namespaces import Team
from portus_fab.registry.names import namespace_of

# The identity portus_fab uses for its own registry calls (enrichment, sync, deletes from the UI).
# It only ever exists inside the process: no credential check can produce it.
INTERNAL_IDENTITY = "portus-fab-internal"


class Action(enum.StrEnum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"


ALL_ACTIONS = frozenset(Action)


class PrincipalKind(enum.StrEnum):
    """What proved who is asking. Each kind of credential (portus_fab.auth.authenticate) makes
    principals of one kind."""

    USER = "user"  # a person, by their password
    ROBOT = "robot"
    ACCESS_TOKEN = "access token"
    ANONYMOUS = "anonymous"
    INTERNAL = "internal"  # portus_fab's own registry calls


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most a credential may do, whatever its owner may: a read-only token only pulls, a
    token for one namespace acts nowhere else. `decide` applies it; no caller filters."""

    actions: frozenset[Action] = ALL_ACTIONS
    namespaces: frozenset[str] | None = None  # None: every namespace

    def describe(self) -> str:
        """`pull, push in alice, ci`: the most it allows, for lists and explanations."""
        actions = ", ".join(action for action in Action if action in self.actions) or "nothing"
        limit = self.namespaces
        where = "every namespace" if limit is None else ", ".join(sorted(limit)) or "no namespace"
        return f"{actions} in {where}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. Anonymous has no user and no name; `ceiling` None means no limit beyond
    the rights of the user behind it."""

    kind: PrincipalKind
    user_id: int | None = None
    username: str | None = None
    is_admin: bool = False
    active: bool = True
    ceiling: Ceiling | None = None
    robot_id: int | None = None  # a robot's rights are its robot grants (kind ROBOT)
    # The access token that proved it (kind ACCESS_TOKEN): its id and name, for the last-use
    # record and for saying which credential a decision came from.
    token_id: int | None = None
    token_name: str | None = None
    # When the credential stops proving anyone (naive UTC), checked even on a cached proof.
    expires_at: dt.datetime | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind == PrincipalKind.ANONYMOUS

    @property
    def credential(self) -> str:
        """Which credential proved it and the most that credential allows, as `explain` and
        the repository page's access box say it."""
        if self.kind == PrincipalKind.ACCESS_TOKEN:
            what = f"access token {self.token_name!r} of {self.username}"
        else:
            what = _CREDENTIALS[self.kind]
        ceiling = "none" if self.ceiling is None else f"at most {self.ceiling.describe()}"
        return f"{what}; ceiling: {ceiling}"

    def __str__(self) -> str:
        if self.is_anonymous:
            return "anonymous"
        name = self.username or "?"
        if self.kind not in (PrincipalKind.USER, PrincipalKind.INTERNAL):
            name = f"{name} ({self.kind})"
        return f"{name} (admin)" if self.is_admin else name


_CREDENTIALS = {
    PrincipalKind.USER: "password or web sign-in",
    PrincipalKind.ROBOT: "robot secret",
    PrincipalKind.ANONYMOUS: "no credentials",
    PrincipalKind.INTERNAL: "portus_fab's own",
}
ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
# A robot pulls and pushes, no more, whatever its grants say: never deletes, never manages.
ROBOT_CEILING = Ceiling(frozenset({Action.PULL, Action.PUSH}))
# The highest role a robot grant gives.
ROBOT_ROLE_CAP = Role.CONTRIBUTOR
INTERNAL = Principal(PrincipalKind.INTERNAL, username=INTERNAL_IDENTITY, is_admin=True)


@dataclass(frozen=True, slots=True)
class RoleSource:
    """One grant that reaches the principal, and the role it gives."""

    role: Role
    via: str  # "user grant" or "team devs"
    grant_role: Role
    member_role: Role | None = None  # the principal's role in the team, for team grants

    def __str__(self) -> str:
        if self.member_role is None:
            return f"{self.role} through {self.via}"
        return (
            f"{self.role} through {self.via} "
            f"(team grant {self.grant_role}, member as {self.member_role})"
        )


@dataclass(frozen=True, slots=True)
class NamespaceFacts:
    name: str
    visibility: Visibility


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    principal: Principal
    repository: str
    namespace: NamespaceFacts | None
    namespace_name: str
    role: Role | None
    sources: tuple[RoleSource, ...]
    decisions: tuple[Decision, ...] = field(default=())

    @property
    def allowed(self) -> frozenset[Action]:
        return frozenset(d.action for d in self.decisions if d.allowed)

    def denial_reasons(self, asked: Iterable[Action]) -> dict[Action, str]:
        asked = set(asked)
        return {d.action: d.reason for d in self.decisions if d.action in asked and not d.allowed}

    def lines(self) -> list[str]:
        ns = self.namespace
        where = (
            f"namespace {self.namespace_name} ({ns.visibility})"
            if ns
            else f"namespace {self.namespace_name} (does not exist)"
        )
        lines = [
            f"{self.principal} on {self.repository}: {where}",
            f"credential: {self.principal.credential}",
        ]
        if self.role is None:
            lines.append("effective role: none")
        else:
            lines.append(f"effective role: {self.role}")
        lines.extend(f"  from {source}" for source in self.sources)
        for decision in self.decisions:
            verdict = "allowed" if decision.allowed else "denied"
            lines.append(f"{decision.action}: {verdict} - {decision.reason}")
        return lines


def catalog_refusal(principal: Principal) -> str | None:
    """Why the principal may not list the registry's catalog (every repository), or None.
    Admins only, with a credential that may pull in every namespace."""
    if not (principal.is_admin and principal.active):
        return "only admins list the catalog"
    ceiling = principal.ceiling
    if ceiling is not None and (
        Action.PULL not in ceiling.actions or ceiling.namespaces is not None
    ):
        return f"this {principal.kind} may not pull in every namespace"
    return None


def ceiling_refusal(principal: Principal, action: Action, namespace_name: str) -> str | None:
    """Why the principal's ceiling keeps it from `action` in the namespace, or None."""
    ceiling = principal.ceiling
    if ceiling is None:
        return None
    if action not in ceiling.actions:
        allowed = ", ".join(a for a in Action if a in ceiling.actions)
        if not allowed:
            return f"this {principal.kind} may do nothing"
        return f"this {principal.kind} may only {allowed}"
    if ceiling.namespaces is not None and namespace_name not in ceiling.namespaces:
        limit = ", ".join(sorted(ceiling.namespaces)) or "no namespace"
        return f"this {principal.kind} is limited to {limit}"
    return None


def may_see_diagnostics(principal: Principal) -> bool:
    """Self-check details name hosts and settings: admins only."""
    return principal.is_admin and principal.active


def effective_role(sources: Iterable[RoleSource]) -> Role | None:
    """The highest role over all grants that reach the principal."""
    return max((s.role for s in sources), key=lambda r: r.rank, default=None)


def team_role(grant_role: Role, member_role: Role) -> Role:
    """A team grant gives each member the lower of the grant's role and their role in the team."""
    return min(grant_role, member_role, key=lambda r: r.rank)


class Manageable(enum.StrEnum):
    """What a principal may manage: a namespace (its description, visibility, grants and its
    repositories' descriptions) or a team (its description and members)."""

    NAMESPACE = "namespace"
    TEAM = "team"


@dataclass(frozen=True, slots=True)
class ManageDecision:
    what: Manageable
    allowed: bool
    reason: str


def decide_manage(principal: Principal, what: Manageable, role: Role | None) -> ManageDecision:
    """May the principal manage a namespace or a team? Pure. `role` is its effective role on the
    namespace (`effective_role` of its sources: a team grant counts as owner only for the
    team's owners) or its role in the team. A credential with a ceiling never manages: a
    ceiling limits what a token may do to images, and managing gives rights to others."""
    if not principal.active:
        return ManageDecision(what, False, "the account is disabled")
    if principal.ceiling is not None:
        return ManageDecision(what, False, f"this {principal.kind} may not manage a {what}")
    if principal.is_anonymous:
        return ManageDecision(what, False, f"log in to manage a {what}")
    if principal.is_admin:
        return ManageDecision(what, True, "admin")
    if role == Role.OWNER:
        return ManageDecision(what, True, f"owner of the {what}")
    if role is None:
        return ManageDecision(what, False, f"no role on the {what}: its owners manage it")
    return ManageDecision(what, False, f"role {role} may not manage the {what}: needs owner")


def decide(
    principal: Principal,
    repository: str,
    namespace: NamespaceFacts | None,
    sources: tuple[RoleSource, ...],
    *,
    delete_by_contributors: bool,
    namespace_name: str | None = None,
) -> Explanation:
    """The rights table. Pure: every fact it needs is an argument. The principal's ceiling
    only ever takes rights away: it is checked before any rule that could grant."""
    role = effective_role(sources)
    if principal.kind == PrincipalKind.ROBOT and role is not None:
        role = min(role, ROBOT_ROLE_CAP, key=lambda r: r.rank)
    judged = namespace.name if namespace else (namespace_name or "?")

    def rule(action: Action) -> Decision:
        if not principal.active:
            return Decision(action, False, "the account is disabled")
        capped = ceiling_refusal(principal, action, judged)
        if capped:
            return Decision(action, False, capped)
        if namespace is None:
            if principal.is_admin and action != Action.PUSH:
                return Decision(action, True, "admin")
            return Decision(
                action,
                False,
                f"namespace '{namespace_name}' does not exist: an admin must create it first",
            )
        if principal.is_admin:
            return Decision(action, True, "admin")
        if role is not None:
            by_role = _ROLE_RIGHTS[role]
            if action in by_role or (
                action == Action.DELETE and role == Role.CONTRIBUTOR and delete_by_contributors
            ):
                return Decision(action, True, f"role {role}")
        if action == Action.PULL:
            if namespace.visibility == Visibility.PUBLIC:
                return Decision(action, True, "the namespace is public")
            if namespace.visibility == Visibility.PROTECTED and reads_protected(principal):
                return Decision(action, True, "the namespace is protected and you are logged in")
            if principal.kind == PrincipalKind.ROBOT:
                return Decision(action, False, f"a robot needs a grant on {namespace.name}")
            if principal.is_anonymous:
                return Decision(action, False, f"the namespace is {namespace.visibility}: log in")
            return Decision(action, False, f"no role on {namespace.visibility} namespace")
        if principal.is_anonymous:
            return Decision(action, False, "anonymous users may only pull")
        if role is None:
            return Decision(action, False, f"no role on namespace '{namespace.name}'")
        needed = (
            "contributor or owner"
            if action == Action.PUSH
            else "owner (contributors may not delete here)"
        )
        return Decision(action, False, f"role {role} may not {action}: needs {needed}")

    decisions = [rule(action) for action in Action]
    return Explanation(
        principal=principal,
        repository=repository,
        namespace=namespace,
        namespace_name=judged,
        role=role,
        sources=sources,
        decisions=tuple(decisions),
    )


_ROLE_RIGHTS: dict[Role, frozenset[Action]] = {
    Role.OWNER: ALL_ACTIONS,
    Role.CONTRIBUTOR: frozenset({Action.PULL, Action.PUSH}),
    Role.VIEWER: frozenset({Action.PULL}),
}


def reads_protected(principal: Principal) -> bool:
    """Whether the principal pulls from protected namespaces ("any logged-in user"): a robot
    is not a user, and pulls only where it holds a grant (or the namespace is public)."""
    return not principal.is_anonymous and principal.kind != PrincipalKind.ROBOT


def namespace_name_of(repository: str) -> str:
    """The namespace a repository lives in: its first path segment, or the global one."""
    return namespace_of(repository) or GLOBAL_NAMESPACE


class Policy:
    """Gathers facts from the database for `decide` and writes the visibility filter."""

    def __init__(self, session: Session, *, delete_by_contributors: bool = False) -> None:
        self.session = session
        self.delete_by_contributors = delete_by_contributors

    def explain(self, principal: Principal, repository: str) -> Explanation:
        name = namespace_name_of(repository)
        namespace = self.session.execute(
            select(Namespace.id, Namespace.name, Namespace.visibility).where(Namespace.name == name)
        ).one_or_none()
        facts = None if namespace is None else NamespaceFacts(namespace.name, namespace.visibility)
        sources: tuple[RoleSource, ...] = ()
        if namespace is not None and principal.robot_id is not None:
            sources = self.robot_role_sources(principal.robot_id, namespace.id)
        elif namespace is not None and principal.user_id is not None:
            sources = self.role_sources(principal.user_id, namespace.id)
        return decide(
            principal,
            repository,
            facts,
            sources,
            delete_by_contributors=self.delete_by_contributors,
            namespace_name=name,
        )

    def allowed_actions(self, principal: Principal, repository: str) -> frozenset[Action]:
        return self.explain(principal, repository).allowed

    def role_sources(self, user_id: int, namespace_id: int) -> tuple[RoleSource, ...]:
        """Every grant on the namespace that reaches the user, directly or through a team."""
        member = TeamMember.__table__.alias("member")
        rows = self.session.execute(
            select(Grant.role, Grant.team_id, Team.name, member.c.role)
            .outerjoin(Team, Team.id == Grant.team_id)
            .outerjoin(member, and_(member.c.team_id == Grant.team_id, member.c.user_id == user_id))
            .where(
                Grant.namespace_id == namespace_id,
                or_(Grant.user_id == user_id, member.c.user_id.is_not(None)),
            )
        ).all()
        sources = []
        for grant_role, team_id, team_name, member_role in rows:
            if team_id is None:
                sources.append(RoleSource(grant_role, "user grant", grant_role))
            else:
                member_role = Role(member_role)
                sources.append(
                    RoleSource(
                        team_role(grant_role, member_role),
                        f"team {team_name}",
                        grant_role,
                        member_role,
                    )
                )
        return tuple(sorted(sources, key=lambda s: (-s.role.rank, s.via)))

    def robot_role_sources(self, robot_id: int, namespace_id: int) -> tuple[RoleSource, ...]:
        """The robot's grant on the namespace, if it has one."""
        role = self.session.scalar(
            select(RobotGrant.role).where(
                RobotGrant.robot_id == robot_id, RobotGrant.namespace_id == namespace_id
            )
        )
        return () if role is None else (RoleSource(role, "robot grant", role),)

    def manage_namespace(self, principal: Principal, namespace_id: int) -> ManageDecision:
        sources: tuple[RoleSource, ...] = ()
        if principal.user_id is not None:
            sources = self.role_sources(principal.user_id, namespace_id)
        return decide_manage(principal, Manageable.NAMESPACE, effective_role(sources))

    def manage_team(self, principal: Principal, team_id: int) -> ManageDecision:
        role = None
        if principal.user_id is not None:
            role = self.session.scalar(
                select(TeamMember.role).where(
                    TeamMember.team_id == team_id, TeamMember.user_id == principal.user_id
                )
            )
        return decide_manage(principal, Manageable.TEAM, role)

    @staticmethod
    def visible_namespaces(principal: Principal) -> ColumnElement[bool]:
        """SQL condition on Namespace: the namespaces whose repositories the principal may pull.

        Mirrors `decide` for Action.PULL: the ceiling first; then admin -> all; any role -> yes;
        otherwise by visibility.
        """
        ceiling = principal.ceiling
        if not principal.active or (ceiling is not None and Action.PULL not in ceiling.actions):
            return false()
        if principal.is_admin:
            visible = true()
        else:
            paths = [Namespace.visibility == Visibility.PUBLIC]
            if reads_protected(principal):
                paths.append(Namespace.visibility == Visibility.PROTECTED)
            if principal.robot_id is not None:
                paths.append(
                    Namespace.id.in_(
                        select(RobotGrant.namespace_id).where(
                            RobotGrant.robot_id == principal.robot_id
                        )
                    )
                )
            elif principal.user_id is not None:
                paths.append(Namespace.id.in_(granted_namespace_ids(principal.user_id)))
            visible = or_(*paths)
        if ceiling is not None and ceiling.namespaces is not None:
            return and_(Namespace.name.in_(sorted(ceiling.namespaces)), visible)
        return visible


def granted_namespace_ids(user_id: int) -> Select[tuple[int]]:
    """Namespaces where the user holds any role, directly or through a team."""
    direct = select(Grant.namespace_id).where(Grant.user_id == user_id)
    through_team = (
        select(Grant.namespace_id)
        .join(TeamMember, TeamMember.team_id == Grant.team_id)
        .where(TeamMember.user_id == user_id)
    )
    return direct.union(through_team)


def visible_namespace_ids(principal: Principal) -> Select[tuple[int]]:
    """The ids behind `Policy.visible_namespaces`, for filtering repositories and tags."""
    return select(Namespace.id).where(Policy.visible_namespaces(principal))


def managed_namespaces(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on Namespace: where the principal may change description, visibility and
    grants - admins everywhere, others where their effective role is owner (mirrors
    `decide_manage`: a team grant counts as owner only for the team's owners; never with a
    ceiling)."""
    if not principal.active or principal.is_anonymous or principal.ceiling is not None:
        return false()
    if principal.is_admin:
        return true()
    direct = select(Grant.namespace_id).where(
        Grant.user_id == principal.user_id, Grant.role == Role.OWNER
    )
    through_team = (
        select(Grant.namespace_id)
        .join(TeamMember, TeamMember.team_id == Grant.team_id)
        .where(
            TeamMember.user_id == principal.user_id,
            TeamMember.role == Role.OWNER,
            Grant.role == Role.OWNER,
        )
    )
    return Namespace.id.in_(direct.union(through_team))


def managed_teams(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on Team: the teams whose members the principal may manage (mirrors
    `decide_manage`)."""
    if not principal.active or principal.is_anonymous or principal.ceiling is not None:
        return false()
    if principal.is_admin:
        return true()
    owned = select(TeamMember.team_id).where(
        TeamMember.user_id == principal.user_id, TeamMember.role == Role.OWNER
    )
    return Team.id.in_(owned)


def manages_credentials_of(
    principal: Principal, owner_id: ColumnElement[int]
) -> ColumnElement[bool]:
    """SQL condition on a credential's owner column (`owner_id`): the credentials the principal
    sees and revokes. A person's own; an admin's, everyone's; a credential with a ceiling (an
    access token, a robot) manages none."""
    person = principal.kind == PrincipalKind.USER and principal.ceiling is None
    if not person or not principal.active:
        return false()
    if principal.is_admin:
        return true()
    return owner_id == principal.user_id


def managed_robots(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on Robot: the robot accounts the principal sees and manages - those of the
    namespaces it manages (`managed_namespaces`; a robot's namespace's owners decide about it,
    as `decide_manage` on that namespace does). No one else sees them, on any page."""
    return Robot.namespace_id.in_(select(Namespace.id).where(managed_namespaces(principal)))


def managed_robot_grants(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on RobotGrant: the grants on namespaces the principal manages (it gave or
    may take them) and the grants of robots it manages (where its robots reach)."""
    managed = select(Namespace.id).where(managed_namespaces(principal))
    own_robots = select(Robot.id).where(managed_robots(principal))
    return or_(RobotGrant.namespace_id.in_(managed), RobotGrant.robot_id.in_(own_robots))
