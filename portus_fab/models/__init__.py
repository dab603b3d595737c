"""portus_fab's tables, on a MetaData of their own (see `base`): only our migrations create them."""

from sqlalchemy import Table

from portus_fab.models.activity import Activity, EventStatus, RegistryEventRecord
from portus_fab.models.base import Model
from portus_fab.models.epoch import PolicyEpoch
from portus_fab.models.lockout import SignInFailure, SignInLock
from portus_fab.models.namespaces import (
    GLOBAL_NAMESPACE,
    Grant,
    Namespace,
    NamespaceKind,
    Role,
    Team,
    TeamMember,
    Visibility,
)
from portus_fab.models.refresh_tokens import RefreshToken
from portus_fab.models.repositories import Repository, Tag
from portus_fab.models.robots import Robot, RobotGrant
from portus_fab.models.tokens import AccessLevel, AccessToken

__all__ = [
    "GLOBAL_NAMESPACE",
    "AccessLevel",
    "AccessToken",
    "Activity",
    "EventStatus",
    "Grant",
    "Model",
    "Namespace",
    "NamespaceKind",
    "PolicyEpoch",
    "RefreshToken",
    "RegistryEventRecord",
    "Repository",
    "Robot",
    "RobotGrant",
    "Role",
    "SignInFailure",
    "SignInLock",
    "Tag",
    "Team",
    "TeamMember",
    "Visibility",
]


def portus_tables() -> list[Table]:
    """The tables this add-on owns: every table on our MetaData (the migrations touch no other)."""
    return list(Model.metadata.sorted_tables)
