"""Robot accounts: create, rotate, disable, enable, delete, grant - and checking their secret.

Every surface (the screens, the CLI, later the REST API) calls these; they raise
portus_fab.errors, flush and never commit (the entry point owns the transaction), and take the
principal acting (`by`) so the one rule - only who manages the namespace (its owners, admins)
manages its robots and gives them grants there - is checked here, through the policy.

A robot's secret is shown once and stored only as its keyed hash (portus_fab.auth.secrets).
Every change here is a change to `Robot` or `RobotGrant`, which bumps the policy epoch
(access/hooks.py): the credential cache of every process misses at the next token request, so
a rotated, disabled or deleted robot is refused from then on.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from portus_fab import audit
from portus_fab.access.policy import ROBOT_CEILING, Policy, Principal, PrincipalKind
from portus_fab.audit import Kind, Target, TargetType
from portus_fab.audit.origin import current_origin
from portus_fab.auth.secrets import SecretHasher, SecretKind, generate
from portus_fab.auth.usage import Throttle, write_last_use
from portus_fab.errors import Conflict, Forbidden, Invalid, NotFound
from portus_fab.models import Namespace, Robot, RobotGrant, Role
from portus_fab.models.activity import Activity
from portus_fab.models.namespaces import utcnow
from portus_fab.models.robots import ROBOT_NAME_MAX, ROBOT_NAME_RE, SEPARATOR

EXPIRES_DAYS_MAX = 3650
DESCRIPTION_MAX = 2000
# Last use is written at most this often per robot and process (never on every pull).
USAGE_INTERVAL = 60.0


class RobotAccess(enum.StrEnum):
    """What a robot may do in its own namespace from the start."""

    READ = "read"  # pull
    WRITE = "write"  # pull and push

    @property
    def role(self) -> Role:
        return Role.VIEWER if self is RobotAccess.READ else Role.CONTRIBUTOR


ROBOT_ROLES = (Role.VIEWER, Role.CONTRIBUTOR)


@dataclass(frozen=True, slots=True)
class RobotSecret:
    """A robot and its secret, as created or rotated: the only time the secret exists."""

    robot: Robot
    secret: str


def validate_robot_name(name: str) -> str | None:
    if not name:
        return "a robot name is required"
    if len(name) > ROBOT_NAME_MAX:
        return f"a robot name has at most {ROBOT_NAME_MAX} characters"
    if not ROBOT_NAME_RE.fullmatch(name):
        return (
            f"invalid robot name {name!r}: lowercase letters and digits, separated by "
            "'.', '_' or '-'"
        )
    return None


def split_full_name(full_name: str) -> tuple[str, str]:
    """`namespace+name` as (namespace, name); Invalid for anything else."""
    namespace, separator, name = full_name.partition(SEPARATOR)
    if not separator or not namespace or not name:
        raise Invalid(f"a robot is named NAMESPACE{SEPARATOR}NAME, not {full_name[:100]!r}")
    return namespace, name


def parse_robot_role(role: Role | str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        parsed = None
    if parsed not in ROBOT_ROLES:
        raise Invalid(f"a robot's role is viewer or contributor, not {str(role)[:20]!r}")
    return parsed


def find_robot(session: Session, full_name: str) -> Robot:
    namespace, name = split_full_name(full_name)
    robot = session.scalar(
        select(Robot).join(Namespace).where(Namespace.name == namespace, Robot.name == name)
    )
    if robot is None:
        raise NotFound(f"no robot named {full_name[:200]!r}")
    return robot


def robot_named(session: Session, full_name: str) -> Robot | None:
    """The robot `namespace+name`, or None (also for a name of another shape)."""
    try:
        return find_robot(session, full_name)
    except (Invalid, NotFound):
        return None


def check_manages(session: Session, by: Principal, namespace: Namespace) -> None:
    """Only who manages a namespace manages its robots and gives robots grants on it."""
    decision = Policy(session).manage_namespace(by, namespace.id)
    if not decision.allowed:
        raise Forbidden(f"only the owners of {namespace.name} may do this: {decision.reason}")


def _find_namespace(session: Session, name: str) -> Namespace:
    namespace = session.scalar(select(Namespace).where(Namespace.name == name))
    if namespace is None:
        raise NotFound(f"no namespace named {name!r}")
    return namespace


def _target(robot: Robot) -> Target:
    return Target(TargetType.ROBOT, robot.full_name)


def expiry(expires_days: int | None, now: dt.datetime) -> dt.datetime | None:
    if expires_days is None:
        return None
    if not 1 <= expires_days <= EXPIRES_DAYS_MAX:
        raise Invalid(f"a robot expires after 1 to {EXPIRES_DAYS_MAX} days, not {expires_days}")
    return now + dt.timedelta(days=expires_days)


def create_robot(
    session: Session,
    hasher: SecretHasher,
    by: Principal,
    namespace_name: str,
    name: str,
    access: RobotAccess | str,
    *,
    expires_days: int | None = None,
    description: str = "",
) -> RobotSecret:
    """A new robot of the namespace with `access` there, and its secret (shown once)."""
    namespace = _find_namespace(session, namespace_name)
    check_manages(session, by, namespace)
    problem = validate_robot_name(name)
    if problem:
        raise Invalid(problem)
    try:
        access = RobotAccess(access)
    except ValueError:
        raise Invalid(f"a robot's access is read or write, not {str(access)[:20]!r}") from None
    if len(description) > DESCRIPTION_MAX:
        raise Invalid(f"a description has at most {DESCRIPTION_MAX} characters")
    now = utcnow()
    expires_at = expiry(expires_days, now)
    exists = select(Robot.id).where(Robot.namespace_id == namespace.id, Robot.name == name)
    if session.scalar(exists) is not None:
        raise Conflict(f"a robot named {namespace.name}{SEPARATOR}{name} already exists")
    secret = generate(SecretKind.ROBOT)
    robot = Robot(
        namespace=namespace,
        name=name,
        description=description,
        secret_hash=hasher.hash(secret),
        expires_at=expires_at,
        created_at=now,
        created_by=current_origin().actor,  # the CLI's operator or the screen's user
    )
    robot.grants.append(RobotGrant(namespace=namespace, role=access.role))
    session.add(robot)
    details = {"access": access.value, "expires_at": expires_at and expires_at.isoformat()}
    audit.record(session, Kind.ROBOT_CREATED, target=_target(robot), details=details)
    session.flush()
    return RobotSecret(robot, secret)


def rotate_secret(
    session: Session, hasher: SecretHasher, by: Principal, robot: Robot
) -> RobotSecret:
    """A new secret; the old one is refused from the next token request on."""
    check_manages(session, by, robot.namespace)
    secret = generate(SecretKind.ROBOT)
    robot.secret_hash = hasher.hash(secret)
    audit.record(session, Kind.ROBOT_ROTATED, target=_target(robot))
    session.flush()
    return RobotSecret(robot, secret)


def set_disabled(session: Session, by: Principal, robot: Robot, disabled: bool) -> Robot:
    check_manages(session, by, robot.namespace)
    if robot.disabled != disabled:
        robot.disabled = disabled
        kind = Kind.ROBOT_DISABLED if disabled else Kind.ROBOT_ENABLED
        audit.record(session, kind, target=_target(robot))
        session.flush()
    return robot


def delete_robot(session: Session, by: Principal, robot: Robot) -> None:
    check_manages(session, by, robot.namespace)
    audit.record(session, Kind.ROBOT_DELETED, target=_target(robot))
    session.delete(robot)
    session.flush()


def check_robot_grant(session: Session, by: Principal, grant: RobotGrant) -> None:
    """A robot grant as any surface would make it: a robot role, by who manages the
    namespace, one per robot and namespace."""
    parse_robot_role(grant.role)
    # A screen's half-built row (in the session through its backrefs) must not be flushed by
    # these lookups.
    with session.no_autoflush:
        check_manages(session, by, grant.namespace)
        duplicate = session.scalar(
            select(RobotGrant.id).where(
                RobotGrant.robot_id == grant.robot.id,
                RobotGrant.namespace_id == grant.namespace.id,
                RobotGrant.id != (grant.id or 0),
            )
        )
    if duplicate is not None:
        raise Conflict(f"robot {grant.robot} already has a grant on {grant.namespace}: edit it")


def set_robot_grant(
    session: Session, by: Principal, namespace: Namespace, robot: Robot, role: Role | str
) -> RobotGrant:
    """Give a robot a role (viewer or contributor) on a namespace, or change the one it has.
    Only who manages `namespace` may: a robot reaches beyond its own namespace only when the
    owners of the other one say so."""
    role = parse_robot_role(role)
    check_manages(session, by, namespace)
    grant = session.scalar(
        select(RobotGrant).where(
            RobotGrant.robot_id == robot.id, RobotGrant.namespace_id == namespace.id
        )
    )
    if grant is None:
        grant = RobotGrant(robot=robot, namespace=namespace, role=role)
        session.add(grant)
    else:
        grant.role = role
    session.flush()
    return grant


def remove_robot_grant(session: Session, by: Principal, namespace: Namespace, robot: Robot) -> None:
    check_manages(session, by, namespace)
    grant = session.scalar(
        select(RobotGrant).where(
            RobotGrant.robot_id == robot.id, RobotGrant.namespace_id == namespace.id
        )
    )
    if grant is None:
        raise NotFound(f"robot {robot} has no grant on {namespace}")
    session.delete(grant)
    session.flush()


def list_robots(session: Session, namespace_name: str | None = None) -> list[Robot]:
    query = (
        select(Robot)
        .join(Namespace)
        .options(joinedload(Robot.namespace), joinedload(Robot.grants))
        .order_by(Namespace.name, Robot.name)
    )
    if namespace_name is not None:
        query = query.where(Namespace.id == _find_namespace(session, namespace_name).id)
    return list(session.scalars(query).unique())


def status(robot: Robot, now: dt.datetime | None = None) -> str:
    """`active`, `disabled` or `expired`, as authentication judges it."""
    if robot.disabled:
        return "disabled"
    if robot.expires_at is not None and robot.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def robot_principal(robot: Robot) -> Principal:
    """As authentication builds it; a disabled or expired robot's is inactive (for `explain`:
    authentication proves no such robot at all)."""
    return Principal(
        PrincipalKind.ROBOT,
        username=robot.full_name,
        robot_id=robot.id,
        active=status(robot) == "active",
        ceiling=ROBOT_CEILING,
        expires_at=robot.expires_at,  # the credential cache checks it on every hit
    )


def check_secret(
    session: Session, hasher: SecretHasher, usage: RobotUsage, username: str, secret: str
) -> Principal | None:
    """The robot `username` (`namespace+name`) with this secret, if it is active; else None.

    Found by the hash of the secret (a unique index), then its name compared: an unknown robot,
    a wrong or an old secret cost the same one query and look the same from outside. A right
    secret of a disabled or expired robot is refused and recorded for the robot's owners."""
    robot = session.scalar(
        select(Robot)
        .options(joinedload(Robot.namespace))
        .where(Robot.secret_hash == hasher.hash(secret))
    )
    if robot is None or robot.full_name != username.lower():
        return None
    state = status(robot)
    if state != "active":
        usage.refused(session, robot, state)
        return None
    return robot_principal(robot)


class RobotUsage:
    """A robot's last use and its refused uses, without a write per pull: each written at most
    once per `interval` per robot and process, on a connection of its own (the token request's
    session commits nothing; a Core statement bumps no policy epoch), and last use only where
    no other process wrote it within the interval."""

    def __init__(self, interval: float = USAGE_INTERVAL) -> None:
        self._interval = interval
        self._uses = Throttle(interval)
        self._refusals = Throttle(interval)

    def used(self, session: Session, robot_id: int) -> None:
        if self._uses.due(robot_id):
            write_last_use(session.get_bind(), Robot.__table__, robot_id, self._interval)

    def refused(self, session: Session, robot: Robot, state: str) -> None:
        """A CI job retrying with a disabled robot must not write a row per attempt."""
        if not self._refusals.due(robot.id):
            return
        row = audit.entry(
            Kind.ROBOT_REFUSED,
            target=_target(robot),
            actor=robot.full_name,
            details={"because": state},
        )
        with session.get_bind().begin() as connection:
            connection.execute(Activity.__table__.insert().values(row))
