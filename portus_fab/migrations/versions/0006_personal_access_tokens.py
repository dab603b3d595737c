"""Personal access tokens: `portus_access_token`, one row per token, its secret only as a hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The models' lengths (models/tokens.py, models/activity.py) when this revision was written.
TOKEN_NAME_MAX = 64
SECRET_HASH_LENGTH = 64
ADDRESS_MAX = 64


def upgrade() -> None:
    op.create_table(
        "portus_access_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=TOKEN_NAME_MAX), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("namespaces", sa.JSON(), nullable=True),
        sa.Column("secret_hash", sa.String(length=SECRET_HASH_LENGTH), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_from", sa.String(length=ADDRESS_MAX), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
        sa.UniqueConstraint("user_id", "name"),
    )
    op.create_index(
        "ix_portus_access_token_user_id", "portus_access_token", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_portus_access_token_user_id", table_name="portus_access_token")
    op.drop_table("portus_access_token")
