"""Refresh tokens of the registry token protocol's OAuth2 flow (`portus_refresh_token`).

Only the HMAC of each secret is stored, with its owner, the client it was issued to, a
fingerprint of the owner's password hash at issue time, its creation, last use and revocation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The models' lengths (models/refresh_tokens.py) when this revision was written.
CLIENT_ID_MAX = 128
HASH_LENGTH = 64


def upgrade() -> None:
    op.create_table(
        "portus_refresh_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=CLIENT_ID_MAX), nullable=False),
        sa.Column("secret_hash", sa.String(length=HASH_LENGTH), nullable=False),
        sa.Column("password_fingerprint", sa.String(length=HASH_LENGTH), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("portus_refresh_token") as batch:
        batch.create_index("ix_portus_refresh_token_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("portus_refresh_token")
