"""Robot accounts: identities for machines (CI, deploy jobs), named `namespace+name`.

They are not FAB users (a table of their own), so nothing of FAB's - its login form, its REST
API's session or JWT login, its user lists - can ever see or sign one in: a robot authenticates
only through portus_fab.auth.authenticate, with its secret, for registry tokens.

Their rights are `RobotGrant` rows, a table of their own rather than a third principal column
on `Grant`: a robot's role is viewer or contributor only (a CHECK, so not even a hand-made row
makes a robot an owner), the user/team grant rules and screens stay as they are, and deleting
a robot or a namespace takes its robot grants with it.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from portus_fab.models.base import Model
from portus_fab.models.namespaces import Namespace, Role, _enum, utcnow
from portus_fab.registry.limits import ACTOR_MAX

ROBOT_NAME_MAX = 64
# Like a registry path component, so `namespace+name` stays one shell word and one CI variable.
ROBOT_NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
# The username separator (Quay's form): never in a namespace or robot name, and unlike Harbor's
# `$` harmless in shells and CI variables.
SEPARATOR = "+"
# HMAC-SHA256 in hex (portus_fab.auth.secrets.SecretHasher).
SECRET_HASH_LENGTH = 64


class Robot(Model):
    __tablename__ = "portus_robot"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("portus_namespace.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(ROBOT_NAME_MAX), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Unique: authentication finds the robot by the hash of the secret it is given.
    secret_hash: Mapped[str] = mapped_column(
        String(SECRET_HASH_LENGTH), unique=True, nullable=False
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX), nullable=True)
    # Written at most once a minute per robot and process, never by the ORM (which would bump
    # the policy epoch): see portus_fab.auth.robots.UsageRecorder.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    # A namespace's robots go with it, on every database (SQLite enforces no ON DELETE here).
    namespace: Mapped[Namespace] = relationship(
        Namespace, backref=backref("robots", cascade="all, delete-orphan")
    )
    grants: Mapped[list[RobotGrant]] = relationship(
        back_populates="robot", cascade="all, delete-orphan"
    )

    @property
    def full_name(self) -> str:
        """The username it authenticates with: `namespace+name`."""
        return f"{self.namespace.name}{SEPARATOR}{self.name}"

    def __repr__(self) -> str:
        return self.full_name


class RobotGrant(Model):
    """A role (viewer or contributor, never owner) on a namespace for a robot."""

    __tablename__ = "portus_robot_grant"
    __table_args__ = (
        UniqueConstraint("robot_id", "namespace_id"),
        CheckConstraint("role IN ('viewer', 'contributor')", name="portus_robot_grant_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[int] = mapped_column(
        ForeignKey("portus_robot.id", ondelete="CASCADE"), nullable=False, index=True
    )
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("portus_namespace.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)

    robot: Mapped[Robot] = relationship(back_populates="grants")
    namespace: Mapped[Namespace] = relationship(
        Namespace, backref=backref("robot_grants", cascade="all, delete-orphan")
    )

    def __repr__(self) -> str:
        return f"robot {self.robot}: {self.role} on {self.namespace}"
