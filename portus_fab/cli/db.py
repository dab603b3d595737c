"""`flask portus db ...`: portus_fab's schema, migrated by its own Alembic history (FAB's tables
and a host application's are not ours to migrate)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask.cli import AppGroup
from sqlalchemy import Engine

from portus_fab import migrations
from portus_fab.core import portus
from portus_fab.migrations import MigrationError, SchemaStatus, State

db_cli = AppGroup("db", help="portus_fab's database schema (its own migrations).")


def _run(step: Callable[[Engine], SchemaStatus]) -> SchemaStatus:
    try:
        return step(portus().session.get_bind())
    except MigrationError as error:
        raise click.ClickException(str(error)) from None


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Bring the schema to REVISION (default: this code's). A database made before migrations
    existed is recognised and recorded at 0001 first, not created again."""
    schema = _run(lambda engine: migrations.upgrade(engine, revision))
    click.echo(f"portus_fab schema {schema}")
    if revision == "head" and schema.state is State.UNKNOWN:
        raise click.ClickException("the database is at a revision this code does not know")


@db_cli.command("current")
@click.option("--check", is_flag=True, help="Exit 1 unless the schema is this code's.")
def current(check: bool) -> None:
    """Say which revision the database is at, and this code's."""
    schema = _run(migrations.status)
    click.echo(f"portus_fab schema {schema}")
    if check and schema.state is not State.UP_TO_DATE:
        sys.exit(1)


@db_cli.command("stamp")
@click.argument("revision")
def stamp(revision: str) -> None:
    """Record REVISION as the schema's without running anything (a database migrated by hand)."""
    click.echo(f"portus_fab schema {_run(lambda engine: migrations.stamp(engine, revision))}")


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Take the schema back to REVISION ("base": drop every portus_fab table). Data in what a
    revision added is lost."""
    click.echo(f"portus_fab schema {_run(lambda engine: migrations.downgrade(engine, revision))}")


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the change is, in a few words.")
def revision(message: str) -> None:
    """Write the next migration from what the models changed (for developers: the database
    must be at the head). Read and correct it before committing it."""
    try:
        path = migrations.new_revision(portus().session.get_bind(), message)
    except MigrationError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {path}")
