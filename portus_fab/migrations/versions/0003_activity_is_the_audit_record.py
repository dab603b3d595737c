"""The activity log becomes the one audit record: who from which address, on what, the details.

`address` (the client's, for changes made on a screen), `target_type` and `target_name` (what a
record is about: a repository, a tag "repository:tag", a namespace or a team) and `details`
(JSON), with an index to read one target's history newest first. Records made before keep
their columns; their target is filled in from the repository and tag they name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The models' lengths (models/activity.py) when this revision was written.
ADDRESS_MAX = 64
TARGET_TYPE_MAX = 16
TARGET_NAME_MAX = 255 + 1 + 128


def upgrade() -> None:
    with op.batch_alter_table("portus_activity") as batch:
        batch.add_column(sa.Column("address", sa.String(length=ADDRESS_MAX), nullable=True))
        batch.add_column(sa.Column("target_type", sa.String(length=TARGET_TYPE_MAX), nullable=True))
        batch.add_column(sa.Column("target_name", sa.String(length=TARGET_NAME_MAX), nullable=True))
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))
        batch.create_index(
            "ix_portus_activity_target", ["target_type", "target_name", "at"], unique=False
        )
    activity = sa.table(
        "portus_activity",
        sa.column("repository", sa.String),
        sa.column("tag", sa.String),
        sa.column("target_type", sa.String),
        sa.column("target_name", sa.String),
    )
    # Every record before this one is about a tag (push, move, delete) or a repository.
    op.execute(
        activity.update()
        .where(activity.c.repository.is_not(None), activity.c.tag.is_not(None))
        .values(target_type="tag", target_name=activity.c.repository + ":" + activity.c.tag)
    )
    op.execute(
        activity.update()
        .where(activity.c.repository.is_not(None), activity.c.tag.is_(None))
        .values(target_type="repository", target_name=activity.c.repository)
    )


def downgrade() -> None:
    with op.batch_alter_table("portus_activity") as batch:
        batch.drop_index("ix_portus_activity_target")
        batch.drop_column("details")
        batch.drop_column("target_name")
        batch.drop_column("target_type")
        batch.drop_column("address")
