"""Robot accounts (`portus_robot`) and their grants on namespaces (`portus_robot_grant`).

A robot belongs to one namespace and is named `namespace+name`; only the HMAC of its secret is
stored. A robot grant is viewer or contributor, never owner (a CHECK constraint).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The models' lengths (models/robots.py, registry/limits.py) when this revision was written.
ROBOT_NAME_MAX = 64
SECRET_HASH_LENGTH = 64
ACTOR_MAX = 128


def upgrade() -> None:
    op.create_table(
        "portus_robot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=ROBOT_NAME_MAX), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=SECRET_HASH_LENGTH), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=ACTOR_MAX), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["namespace_id"], ["portus_namespace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "name"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("portus_robot") as batch:
        batch.create_index("ix_portus_robot_namespace_id", ["namespace_id"], unique=False)
    op.create_table(
        "portus_robot_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'contributor')", name="portus_robot_grant_role"),
        sa.ForeignKeyConstraint(["robot_id"], ["portus_robot.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["namespace_id"], ["portus_namespace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("robot_id", "namespace_id"),
    )
    with op.batch_alter_table("portus_robot_grant") as batch:
        batch.create_index("ix_portus_robot_grant_robot_id", ["robot_id"], unique=False)
        batch.create_index("ix_portus_robot_grant_namespace_id", ["namespace_id"], unique=False)


def downgrade() -> None:
    op.drop_table("portus_robot_grant")
    op.drop_table("portus_robot")
