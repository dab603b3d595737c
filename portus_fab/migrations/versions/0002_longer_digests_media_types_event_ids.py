"""Digests, media types and event ids up to 255 characters (registry/limits.py).

The webhook's parser now refuses values longer than the columns, and the columns grew to what
the registry may send: a digest of a longer algorithm, a vendor media type, a long event id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# table: (column, length before, length after, nullable)
WIDENED = {
    "portus_activity": [
        ("digest", 100, 255, True),
        ("previous_digest", 100, 255, True),
    ],
    "portus_registry_event": [
        ("event_id", 128, 255, True),
        ("digest", 100, 255, True),
        ("media_type", 128, 255, True),
    ],
    "portus_tag": [
        ("digest", 100, 255, False),
        ("media_type", 128, 255, True),
        ("enriched_digest", 100, 255, True),
    ],
}


def _resize(to_after: bool) -> None:
    # Batch operations: SQLite changes a column by copying its table, PostgreSQL by ALTER.
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column, before, after, nullable in columns:
                old, new = (before, after) if to_after else (after, before)
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=old),
                    type_=sa.String(length=new),
                    existing_nullable=nullable,
                )


def upgrade() -> None:
    _resize(to_after=True)


def downgrade() -> None:
    # Values longer than the old lengths fail the downgrade on PostgreSQL rather than be cut.
    _resize(to_after=False)
