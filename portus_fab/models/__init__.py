"""portus_fab's tables. They share FAB's declarative base so they can reference `ab_user`."""

from portus_fab.models.activity import Activity, RegistryEventRecord
from portus_fab.models.epoch import PolicyEpoch
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
from portus_fab.models.repositories import Repository, Tag

__all__ = [
    "GLOBAL_NAMESPACE",
    "Activity",
    "Grant",
    "Namespace",
    "NamespaceKind",
    "PolicyEpoch",
    "RegistryEventRecord",
    "Repository",
    "Role",
    "Tag",
    "Team",
    "TeamMember",
    "Visibility",
]


def portus_tables() -> list:
    """The tables this add-on owns (FAB creates only its own; see PortusManager)."""
    models = (
        Namespace,
        Team,
        TeamMember,
        Grant,
        Repository,
        Tag,
        RegistryEventRecord,
        Activity,
        PolicyEpoch,
    )
    return [model.__table__ for model in models]
