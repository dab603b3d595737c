"""THE record of what happened: one stream for every change portus_fab makes or learns of.

Every activity row is written by `record` (one change) or `record_many` (the webhook's pushes,
in one statement), in the session of the change itself: the record only adds to the session, so
it stands or falls with the change (portus_fab.models.transaction). Later surfaces (an audit log
screen, CSV export, outgoing webhooks) read the same rows, so the kind names are stable.

Who and from where come from the entry point (`origin.acting`, or the web surface's request
origin); `changes` records every change to namespaces, teams, members and grants at flush time,
whichever surface made it.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from portus_fab.audit.origin import Origin, current_origin
from portus_fab.models import Activity
from portus_fab.models.namespaces import utcnow
from portus_fab.registry.limits import ACTOR_MAX


class Kind(enum.StrEnum):
    """What happened. The values are stored and consumed elsewhere: never rename one."""

    PUSH = "push"
    TAG_MOVED = "tag moved"
    DELETE = "delete"  # a tag gone from the registry
    DELETE_REQUESTED = "delete requested"  # a digest deleted from portus_fab's pages
    REPOSITORY_REMOVED = "repository removed"
    NAMESPACE_CREATED = "namespace created"
    NAMESPACE_CHANGED = "namespace changed"  # description
    VISIBILITY_CHANGED = "visibility changed"
    NAMESPACE_DELETED = "namespace deleted"
    TEAM_CREATED = "team created"
    TEAM_CHANGED = "team changed"
    TEAM_DELETED = "team deleted"
    MEMBER_ADDED = "member added"
    MEMBER_ROLE_CHANGED = "member role changed"
    MEMBER_REMOVED = "member removed"
    GRANT_ADDED = "grant added"
    GRANT_CHANGED = "grant changed"
    GRANT_REMOVED = "grant removed"
    # portus_fab.auth.lockout: too many failed sign-ins, a lock lifted, a sign-in refused by one.
    SIGN_IN_LOCKED = "sign-in locked"
    SIGN_IN_UNLOCKED = "sign-in unlocked"
    SIGN_IN_REFUSED_LOCKED = "sign-in refused while locked"
    ROBOT_CREATED = "robot created"
    ROBOT_ROTATED = "robot secret rotated"
    ROBOT_DISABLED = "robot disabled"
    ROBOT_ENABLED = "robot enabled"
    ROBOT_DELETED = "robot deleted"
    ROBOT_REFUSED = "robot refused"  # its right secret, but disabled or expired
    ACCESS_TOKEN_CREATED = "access token created"
    ACCESS_TOKEN_REVOKED = "access token revoked"
    ACCESS_TOKEN_REFUSED = "access token refused"  # a real token, expired, revoked or misused
    REFRESH_TOKEN_ISSUED = "refresh token issued"
    REFRESH_TOKEN_REVOKED = "refresh token revoked"
    # A real token, revoked, or its owner disabled or with a new password since.
    REFRESH_TOKEN_REFUSED = "refresh token refused"


class TargetType(enum.StrEnum):
    """What a record is about; with `target_name` it says where to look."""

    REPOSITORY = "repository"
    TAG = "tag"
    NAMESPACE = "namespace"
    TEAM = "team"
    ACCOUNT = "account"  # a username as a client claimed it, existing or not
    ADDRESS = "address"  # a client's address
    ROBOT = "robot"  # by its full name, `namespace+name`
    ACCESS_TOKEN = "access token"  # by `username/token name`
    REFRESH_TOKEN = "refresh token"  # by `username/token id`


@dataclass(frozen=True, slots=True)
class Target:
    type: TargetType
    name: str


def entry(
    kind: Kind,
    *,
    target: Target,
    origin: Origin | None = None,
    actor: str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    digest: str | None = None,
    previous_digest: str | None = None,
    detail: str | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The row of one record. `actor` overrides the origin's (a registry event names the user
    who pushed); without either, the entry point's origin (`current_origin`) is used."""
    origin = origin or current_origin()
    return {
        "at": at or utcnow(),
        "kind": kind.value,
        "actor": (actor if actor is not None else origin.actor)[:ACTOR_MAX],
        "address": origin.address,
        "target_type": target.type.value,
        "target_name": target.name,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "previous_digest": previous_digest,
        "detail": detail,
        "details": details,
    }


def record(session: Session, kind: Kind, *, target: Target, **fields: Any) -> Activity:
    """Record one thing that happened, in the session (and so the transaction) of the change."""
    activity = Activity(**entry(kind, target=target, **fields))
    session.add(activity)
    return activity


def record_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Record many `entry` rows in one statement (the webhook records a whole envelope)."""
    if entries:
        session.connection().execute(insert(Activity.__table__), entries)
