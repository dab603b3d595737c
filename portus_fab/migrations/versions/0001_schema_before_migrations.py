"""The schema portus_fab's tables had before migrations (commit 6e45d4e's models).

A database made by that code has these tables and no version; `portus_fab.migrations` stamps it
at this revision instead of running it.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Enum columns store their values as plain strings with no CHECK, so new values need no revision.
ENUM = sa.String(length=16)


def upgrade() -> None:
    op.create_table(
        "portus_namespace",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", ENUM, nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name"),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "portus_team",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "portus_team_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", ENUM, nullable=False),
        sa.UniqueConstraint("team_id", "user_id"),
        sa.ForeignKeyConstraint(["team_id"], ["portus_team.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_team_member_team_id", "portus_team_member", ["team_id"])
    op.create_index("ix_portus_team_member_user_id", "portus_team_member", ["user_id"])
    op.create_table(
        "portus_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("role", ENUM, nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (team_id IS NULL)", name="portus_grant_one_principal"
        ),
        sa.UniqueConstraint("namespace_id", "user_id"),
        sa.UniqueConstraint("namespace_id", "team_id"),
        sa.ForeignKeyConstraint(["namespace_id"], ["portus_namespace.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["team_id"], ["portus_team.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_grant_namespace_id", "portus_grant", ["namespace_id"])
    op.create_index("ix_portus_grant_user_id", "portus_grant", ["user_id"])
    op.create_index("ix_portus_grant_team_id", "portus_grant", ["team_id"])
    op.create_table(
        "portus_repository",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_pushed_at", sa.DateTime(), nullable=True),
        sa.Column("pull_count", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("name"),
        sa.ForeignKeyConstraint(["namespace_id"], ["portus_namespace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_repository_namespace_id", "portus_repository", ["namespace_id"])
    op.create_index("ix_portus_repository_last_pushed_at", "portus_repository", ["last_pushed_at"])
    op.create_table(
        "portus_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=True),
        sa.Column("pushed_by", sa.String(length=128), nullable=True),
        sa.Column("pushed_at", sa.DateTime(), nullable=True),
        sa.Column("pull_count", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled_at", sa.DateTime(), nullable=True),
        sa.Column("enriched_digest", sa.String(length=100), nullable=True),
        sa.Column("enriched_at", sa.DateTime(), nullable=True),
        sa.Column("enrich_error", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=True),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.UniqueConstraint("repository_id", "name"),
        sa.ForeignKeyConstraint(["repository_id"], ["portus_repository.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_tag_repository_id", "portus_tag", ["repository_id"])
    op.create_index("ix_portus_tag_digest", "portus_tag", ["digest"])
    op.create_table(
        "portus_registry_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("repository", sa.String(length=255), nullable=True),
        sa.Column("tag", sa.String(length=128), nullable=True),
        sa.Column("digest", sa.String(length=100), nullable=True),
        sa.Column("media_type", sa.String(length=128), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.UniqueConstraint("event_id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_registry_event_repository", "portus_registry_event", ["repository"])
    op.create_index(
        "ix_portus_registry_event_received_at", "portus_registry_event", ["received_at"]
    )
    op.create_index("ix_portus_registry_event_status_id", "portus_registry_event", ["status", "id"])
    op.create_table(
        "portus_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("repository", sa.String(length=255), nullable=True),
        sa.Column("tag", sa.String(length=128), nullable=True),
        sa.Column("digest", sa.String(length=100), nullable=True),
        sa.Column("previous_digest", sa.String(length=100), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portus_activity_at", "portus_activity", ["at"])
    op.create_index("ix_portus_activity_repository", "portus_activity", ["repository"])
    op.create_table(
        "portus_policy_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    # Dependents first; each table's indexes go with it.
    for table in (
        "portus_policy_epoch",
        "portus_activity",
        "portus_registry_event",
        "portus_tag",
        "portus_repository",
        "portus_grant",
        "portus_team_member",
        "portus_team",
        "portus_namespace",
    ):
        op.drop_table(table)
