"""Failed sign-ins and the locks they cause (portus_fab.auth.lockout).

`portus_sign_in_failure`: one row per failed sign-in still inside the counting window, by the
name it claimed and the client's address. `portus_sign_in_lock`: sign-in refused from an address
until a time, for one account or (no username) for every account.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The models' lengths (models/lockout.py, models/activity.py) when this revision was written.
CLAIMED_NAME_MAX = 255
ADDRESS_MAX = 64


def upgrade() -> None:
    op.create_table(
        "portus_sign_in_failure",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(CLAIMED_NAME_MAX), nullable=False),
        sa.Column("address", sa.String(ADDRESS_MAX), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_portus_sign_in_failure_at", "portus_sign_in_failure", ["at"])
    op.create_index(
        "ix_portus_sign_in_failure_address", "portus_sign_in_failure", ["address", "at"]
    )
    op.create_index(
        "ix_portus_sign_in_failure_pair", "portus_sign_in_failure", ["username", "address", "at"]
    )
    op.create_table(
        "portus_sign_in_lock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(CLAIMED_NAME_MAX), nullable=True),
        sa.Column("address", sa.String(ADDRESS_MAX), nullable=False),
        sa.Column("locked_at", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
    )
    op.create_index("ix_portus_sign_in_lock_address", "portus_sign_in_lock", ["address", "until"])


def downgrade() -> None:
    op.drop_table("portus_sign_in_lock")
    op.drop_table("portus_sign_in_failure")
