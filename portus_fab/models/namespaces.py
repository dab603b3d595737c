"""Namespaces, teams and grants: the facts the policy reasons about."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portus_fab.models.base import Model
from portus_fab.registry.limits import REPOSITORY_NAME_MAX

# Repositories without a "/" live here. The name cannot be a registry path component (those start
# with [a-z0-9]), so no user or team namespace can ever collide with it.
GLOBAL_NAMESPACE = "_global"
MEMBERSHIP_SOURCE_MAX = 16


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # anyone, anonymous included, may pull and browse
    PROTECTED = "protected"  # any logged-in user may pull and browse
    PRIVATE = "private"  # only those with a role, and admins


class NamespaceKind(enum.StrEnum):
    PERSONAL = "personal"
    GLOBAL = "global"
    TEAM = "team"
    ADOPTED = "adopted"  # found in the registry by a sync; admins decide who gets it


class Role(enum.StrEnum):
    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.VIEWER: 1, Role.CONTRIBUTOR: 2, Role.OWNER: 3}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store the lowercase values (not member names) and skip CHECK/native types so that new
    # values never need a schema change.
    return Enum(
        cls,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        native_enum=False,
        create_constraint=False,
        length=16,
    )


class Namespace(Model):
    __tablename__ = "portus_namespace"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A repository's first path component names its namespace (adopted ones too).
    name: Mapped[str] = mapped_column(String(REPOSITORY_NAME_MAX), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    visibility: Mapped[Visibility] = mapped_column(
        _enum(Visibility, "visibility"), default=Visibility.PRIVATE, nullable=False
    )
    kind: Mapped[NamespaceKind] = mapped_column(
        _enum(NamespaceKind, "namespace_kind"), default=NamespaceKind.TEAM, nullable=False
    )
    # The user a personal namespace belongs to (kept for display; rights come from grants).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey(User.id, ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    user: Mapped[User | None] = relationship(User)
    grants: Mapped[list[Grant]] = relationship(
        back_populates="namespace", cascade="all, delete-orphan"
    )

    @property
    def display_name(self) -> str:
        return "(global)" if self.kind == NamespaceKind.GLOBAL else self.name

    def __repr__(self) -> str:
        return self.display_name


class Team(Model):
    __tablename__ = "portus_team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    members: Mapped[list[TeamMember]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )
    grants: Mapped[list[Grant]] = relationship(back_populates="team", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.name


class TeamMember(Model):
    __tablename__ = "portus_team_member"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(
        ForeignKey("portus_team.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey(User.id, ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)
    # None for a membership made by hand; else the sign-in it is synced from ("ldap", "oidc"),
    # which owns it: portus_fab.access.group_teams changes it, no one else.
    source: Mapped[str | None] = mapped_column(String(MEMBERSHIP_SOURCE_MAX), nullable=True)

    team: Mapped[Team] = relationship(back_populates="members")
    user: Mapped[User] = relationship(User)

    def __repr__(self) -> str:
        return f"{self.user.username if self.user else '?'} ({self.role})"


class Grant(Model):
    """A role on a namespace for exactly one principal: a user or a team."""

    __tablename__ = "portus_grant"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NULL) <> (team_id IS NULL)", name="portus_grant_one_principal"
        ),
        UniqueConstraint("namespace_id", "user_id"),
        UniqueConstraint("namespace_id", "team_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("portus_namespace.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey(User.id, ondelete="CASCADE"), nullable=True, index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("portus_team.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)

    namespace: Mapped[Namespace] = relationship(back_populates="grants")
    user: Mapped[User | None] = relationship(User)
    team: Mapped[Team | None] = relationship(back_populates="grants")

    @property
    def principal_name(self) -> str:
        if self.team is not None:
            return f"team {self.team.name}"
        return f"user {self.user.username}" if self.user else "user ?"

    def __repr__(self) -> str:
        return f"{self.principal_name}: {self.role} on {self.namespace}"
