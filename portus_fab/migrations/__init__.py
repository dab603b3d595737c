"""portus_fab's schema migrations: an Alembic history of its own, run at start-up or by
`flask portus db upgrade`.

An add-on shares its database with FAB and often with a host application that migrates its own
tables (Flask-Migrate keeps its position in `alembic_version`). So this history records its
position in a table of its own, `portus_alembic_version`, and compares and changes portus_fab's
tables only (`include_object`), never FAB's `ab_*` tables or the host's. Plain Alembic, not
Flask-Migrate: Flask-Migrate gives an app one history (one `migrations/` folder, one `flask db`
group, one version table), and that one belongs to the host application.

Each process calls `upgrade` when it starts: a database already at the head costs one read of the
version table. Only a database behind the code takes the lock (a PostgreSQL advisory lock, or
SQLite's writer lock file beside the database) and looks again under it, so of two gunicorn
workers starting at once one migrates and the other then finds nothing to do.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from portus_fab.models import Model, sqlite
from portus_fab.models.epoch import mark_schema_ready

VERSION_TABLE = "portus_alembic_version"
FIRST_REVISION = "0001"
# What the code before migrations created with `create_all`: the schema of revision 0001.
UNVERSIONED_TABLES = frozenset(
    {
        "portus_namespace",
        "portus_team",
        "portus_team_member",
        "portus_grant",
        "portus_repository",
        "portus_tag",
        "portus_registry_event",
        "portus_activity",
        "portus_policy_epoch",
    }
)
log = logging.getLogger(__name__)
# pg_advisory_xact_lock's key: any constant no other lock in the database uses ("portus" in ASCII).
PG_LOCK_KEY = 0x706F72747573
_DIRECTORY = Path(__file__).resolve().parent


class MigrationError(RuntimeError):
    """The database cannot be brought to this code's schema without a person deciding how."""


P = ParamSpec("P")
R = TypeVar("R")


def _refusals(func: Callable[P, R]) -> Callable[P, R]:
    """Alembic's refusals (an unknown revision, a database not at the head) as ours."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CommandError as error:
            raise MigrationError(str(error)) from None

    return wrapper


class State(enum.StrEnum):
    UP_TO_DATE = "up to date"
    BEHIND = "behind"  # upgrading brings it to the head
    UNKNOWN = "unknown"  # a revision this code does not know: newer code migrated it


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: str | None  # None: no version recorded (an empty database, or one made before us)
    head: str

    @property
    def state(self) -> State:
        if self.current == self.head:
            return State.UP_TO_DATE
        return (
            State.BEHIND
            if self.current is None or self.current in _revisions()
            else (State.UNKNOWN)
        )

    def __str__(self) -> str:
        return f"at {self.current or 'no revision'}, head {self.head} ({self.state})"


def is_ours(table_name: str) -> bool:
    """portus_fab's tables: those of its models, and any `portus_` table a revision left behind
    (so that a table dropped from the models without its migration shows up in a comparison)."""
    return table_name in Model.metadata.tables or (
        table_name.startswith("portus_") and table_name != VERSION_TABLE
    )


def include_object(
    obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
) -> bool:
    """Alembic's filter: a table, or a column, index or constraint of a table, that is ours."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is not None and is_ours(table.name)


def config(connection: Connection) -> Config:
    """Alembic's configuration for our history on `connection` (there is no alembic.ini: the
    database is the app's, and env.py takes the connection from here)."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(_DIRECTORY))
    alembic_config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    alembic_config.attributes["connection"] = connection
    return alembic_config


@cache
def _script() -> ScriptDirectory:
    # Read once per process: the history cannot change while the code runs.
    return ScriptDirectory(str(_DIRECTORY))


@cache
def _revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _script().walk_revisions())


def head() -> str:
    heads = _script().get_heads()
    if len(heads) != 1:
        raise MigrationError(f"portus_fab's history must have one head, it has {sorted(heads)}")
    return heads[0]


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def status(engine: Engine) -> SchemaStatus:
    with engine.connect() as connection:
        return SchemaStatus(_current(connection), head())


@contextmanager
def _exclusive(connection: Connection) -> Iterator[None]:
    """One migrating process at a time, held until the transaction ends (PostgreSQL) or the
    block does (SQLite's writer lock, which the webhook and the event applier also take)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        yield
    else:
        with sqlite.writer_lock(connection.engine):
            yield


def _adopt_unversioned(connection: Connection) -> None:
    """A database made before migrations existed holds revision 0001's tables and no version:
    record it at 0001 so that upgrading alters it instead of creating what is there."""
    present = UNVERSIONED_TABLES & set(inspect(connection).get_table_names())
    if not present:
        return  # an empty database: the history creates everything
    if present != UNVERSIONED_TABLES:
        missing = ", ".join(sorted(UNVERSIONED_TABLES - present))
        raise MigrationError(
            f"portus_fab's tables are there but {missing} are missing and no version is recorded:"
            " restore them or stamp the revision they match (`flask portus db stamp`)"
        )
    command.stamp(config(connection), FIRST_REVISION)


@_refusals
def upgrade(engine: Engine, revision: str = "head") -> SchemaStatus:
    """Bring the database to `revision`; a database at the head is left alone, one at a revision
    this code does not know (newer code migrated it) too: see the status returned."""
    before = status(engine)
    if before.state is not State.BEHIND and revision == "head":
        return before
    with engine.begin() as connection, _exclusive(connection):
        # Another process may have migrated while this one waited for the lock.
        if _current(connection) is None:
            _adopt_unversioned(connection)
        command.upgrade(config(connection), revision)
    return status(engine)


def prepare_schema(engine: Engine, *, migrate: bool) -> bool:
    """At start-up: upgrade (unless the deployment migrates as a step of its own) and say whether
    the schema is one this code can use.

    A schema this code cannot use is logged, not raised: FAB would only log the exception, and
    the add-on must still register its CLI so that `flask portus db upgrade` (or `stamp`) can
    repair the database.
    """
    try:
        schema = upgrade(engine) if migrate else status(engine)
    except MigrationError as error:
        log.error("portus_fab cannot migrate the database: %s", error)
        return False
    if schema.state is State.BEHIND:
        log.error(
            "portus_fab's database schema is %s: run `flask --app run portus db upgrade` "
            "(PORTUS_AUTO_MIGRATE is off)",
            schema,
        )
        return False
    if schema.state is State.UNKNOWN:
        log.warning("portus_fab's database schema is %s: newer code has migrated it", schema)
    mark_schema_ready(engine)
    return True


@_refusals
def stamp(engine: Engine, revision: str) -> SchemaStatus:
    """Record `revision` without running anything: for a database someone migrated by hand."""
    with engine.begin() as connection, _exclusive(connection):
        command.stamp(config(connection), revision)
    return status(engine)


@_refusals
def downgrade(engine: Engine, revision: str) -> SchemaStatus:
    with engine.begin() as connection, _exclusive(connection):
        command.downgrade(config(connection), revision)
    return status(engine)


@_refusals
def new_revision(engine: Engine, message: str) -> Path:
    """Write the next revision (0002, 0003, ...): what the models changed since the head, compared
    with `engine`'s database, which must be at the head. Read and correct it before committing."""
    number = max(int(revision) for revision in _revisions()) + 1
    with engine.connect() as connection:
        written = command.revision(
            config(connection), message, autogenerate=True, rev_id=f"{number:04d}"
        )
    assert written is not None and not isinstance(written, list)  # one head, one script
    return Path(written.path)


def differences(connection: Connection) -> list[Any]:
    """What autogenerate would put in a new revision: nothing when models and history agree."""
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "include_object": include_object}
    )
    return compare_metadata(context, Model.metadata)
