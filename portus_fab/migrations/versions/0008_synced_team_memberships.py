"""Team memberships synced from a directory or identity provider (`portus_team_member.source`).

None marks a membership made by hand, as every existing one was; "ldap" or "oidc" one that the
sign-in keeps in step with the user's groups.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The model's length (models/namespaces.py MEMBERSHIP_SOURCE_MAX) when this revision was written.
SOURCE_MAX = 16


def upgrade() -> None:
    with op.batch_alter_table("portus_team_member") as batch:
        batch.add_column(sa.Column("source", sa.String(length=SOURCE_MAX), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("portus_team_member") as batch:
        batch.drop_column("source")
