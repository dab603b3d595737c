"""Databases as the code before migrations left them, and snapshots to compare them by.

"Made by today's code" is built from revision 0001 (whose schema is exactly what that code's
`create_all` made, on SQLite and PostgreSQL alike), without the version table, and with a row in
every table, FAB's `ab_user` included.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_appbuilder import Model as FabModel
from sqlalchemy import Engine, MetaData, inspect, select, text

from portus_fab import migrations

AT = dt.datetime(2026, 11, 1, 12, 0, 0)
DIGEST = "sha256:" + "ab" * 32
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# One row (or two) in every table revision 0001 created, in an order their keys allow.
ROWS: dict[str, list[dict[str, Any]]] = {
    "portus_namespace": [
        {
            "id": 1,
            "name": "_global",
            "description": "",
            "visibility": "public",
            "kind": "global",
            "user_id": None,
            "created_at": AT,
        },
        {
            "id": 2,
            "name": "alice",
            "description": "hers",
            "visibility": "private",
            "kind": "personal",
            "user_id": 1,
            "created_at": AT,
        },
    ],
    "portus_team": [{"id": 1, "name": "devs", "description": "the team", "created_at": AT}],
    "portus_team_member": [{"id": 1, "team_id": 1, "user_id": 1, "role": "owner"}],
    "portus_grant": [
        {"id": 1, "namespace_id": 2, "user_id": 1, "team_id": None, "role": "owner"},
        {"id": 2, "namespace_id": 2, "user_id": None, "team_id": 1, "role": "viewer"},
    ],
    "portus_repository": [
        {
            "id": 1,
            "name": "alice/app",
            "namespace_id": 2,
            "description": "an app",
            "created_at": AT,
            "last_pushed_at": AT,
            "pull_count": 3,
            "last_pulled_at": AT,
        },
    ],
    "portus_tag": [
        {
            "id": 1,
            "repository_id": 1,
            "name": "latest",
            "digest": DIGEST,
            "media_type": MANIFEST,
            "pushed_by": "alice",
            "pushed_at": AT,
            "pull_count": 2,
            "last_pulled_at": AT,
            "enriched_digest": DIGEST,
            "enriched_at": AT,
            "enrich_error": None,
            "size": 1234,
            "created": AT,
            "platforms": ["linux/amd64"],
            "labels": {"org.example": "yes"},
            "details": {"linux/amd64": {"layers": []}},
        },
    ],
    "portus_registry_event": [
        {
            "id": 1,
            "event_id": "event-1",
            "action": "push",
            "repository": "alice/app",
            "tag": "latest",
            "digest": DIGEST,
            "media_type": MANIFEST,
            "actor": "alice",
            "occurred_at": AT,
            "received_at": AT,
            "status": "applied",
            "reason": None,
            "raw": "{}",
        },
    ],
    "portus_activity": [
        {
            "id": 1,
            "at": AT,
            "kind": "push",
            "actor": "alice",
            "repository": "alice/app",
            "tag": "latest",
            "digest": DIGEST,
            "previous_digest": None,
            "detail": "first push",
        },
    ],
    "portus_policy_epoch": [{"id": 1, "value": 7}],
}


def fab_tables(engine: Engine) -> None:
    """FAB's own tables, as FAB's start-up makes them (our tables are not on its MetaData)."""
    FabModel.metadata.create_all(engine)


def pre_migration_database(engine: Engine) -> None:
    """A database as the code before migrations made and used it."""
    fab_tables(engine)
    migrations.upgrade(engine, migrations.FIRST_REVISION)
    tables = _reflect(engine)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
        connection.execute(
            tables["ab_user"].insert(),
            {
                "id": 1,
                "first_name": "Alice",
                "last_name": "Smith",
                "username": "alice",
                "email": "alice@example.test",
                "active": True,
                "created_on": AT,
            },
        )
        for name, rows in ROWS.items():
            connection.execute(tables[name].insert(), rows)
    assert set(ROWS) == migrations.UNVERSIONED_TABLES


def _reflect(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata.tables  # type: ignore[return-value]


def rows(engine: Engine, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row of `table` (only `columns`, if given), in primary key order."""
    reflected = _reflect(engine)[table]
    chosen = [reflected.c[name] for name in columns] if columns else list(reflected.c)
    order = list(reflected.primary_key.columns) or chosen
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(*chosen).order_by(*order))]


def shape(engine: Engine, table: str) -> dict[str, Any]:
    """What a migration could change about a table: columns, keys, indexes, constraints."""
    inspector = inspect(engine)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
        ],
        "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
        "foreign keys": sorted(
            (fk["constrained_columns"], fk["referred_table"])
            for fk in inspector.get_foreign_keys(table)
        ),
        "indexes": sorted(
            (i["name"] or "", i["column_names"]) for i in inspector.get_indexes(table)
        ),
        "unique": sorted(u["column_names"] for u in inspector.get_unique_constraints(table)),
    }


def not_ours(engine: Engine) -> dict[str, Any]:
    """The shape and the rows of every table that is not portus_fab's (FAB's, a host's)."""
    return {
        name: (shape(engine, name), rows(engine, name))
        for name in inspect(engine).get_table_names()
        if not migrations.is_ours(name) and name != migrations.VERSION_TABLE
    }
