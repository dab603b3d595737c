"""portus_fab's schema migrations on SQLite: the history builds what the models say, adopts a
database made before it existed, leaves FAB's and a host's tables alone, runs once when
processes start together, and can be left to `flask portus db upgrade`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask_appbuilder import Model as FabModel
from flask_appbuilder.cli import create_db as fab_create_db
from sqlalchemy import Engine, create_engine, inspect, text

from portus_fab import migrations
from portus_fab.migrations import State
from portus_fab.models import portus_tables, sqlite
from run import create_app
from tests.conftest import app_config
from tests.support.schema import ROWS, fab_tables, not_ours, pre_migration_database, rows
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'portus.db'}")
    yield engine
    engine.dispose()


def our_tables(engine: Engine) -> set[str]:
    return {name for name in inspect(engine).get_table_names() if migrations.is_ours(name)}


def test_the_history_builds_what_the_models_say(engine: Engine) -> None:
    fab_tables(engine)
    assert migrations.upgrade(engine).state is State.UP_TO_DATE
    with engine.connect() as connection:
        assert migrations.differences(connection) == []
    assert our_tables(engine) == {table.name for table in portus_tables()}


def test_an_app_on_an_empty_database_is_at_the_head(engine: Engine, tmp_path: Path) -> None:
    app = create_app(app_config(tmp_path))
    with app.app_context():
        assert migrations.status(engine).state is State.UP_TO_DATE
        with engine.connect() as connection:
            assert migrations.differences(connection) == []
        app.appbuilder.session.remove()


def test_fab_never_creates_our_tables(tmp_path: Path, engine: Engine) -> None:
    # Our models are imported (this process built apps already): FAB's start-up create_all and
    # `flask fab create-db` would have created their tables, as they stand, with no version.
    assert not [name for name in FabModel.metadata.tables if migrations.is_ours(name)]
    app = create_app(app_config(tmp_path, PORTUS_AUTO_MIGRATE=False))
    with app.app_context():
        result = app.test_cli_runner().invoke(fab_create_db)
        assert result.exit_code == 0, result.output
        assert "ab_user" in inspect(engine).get_table_names()
        assert our_tables(engine) == set()
        app.appbuilder.session.remove()


def test_a_database_made_before_migrations_is_adopted_with_every_row(
    engine: Engine, tmp_path: Path
) -> None:
    pre_migration_database(engine)
    before = {name: rows(engine, name) for name in ROWS}
    app = create_app(app_config(tmp_path))  # the start-up path: recognise, stamp, upgrade
    with app.app_context():
        assert migrations.status(engine).state is State.UP_TO_DATE
        for name, kept in before.items():
            if name != "portus_policy_epoch":
                assert rows(engine, name, list(kept[0])) == kept, name
        # The start's role sync bumps the epoch; it must never go back (caches key on it).
        assert rows(engine, "portus_policy_epoch")[0]["value"] > 7
        with engine.connect() as connection:
            assert migrations.differences(connection) == []
        app.appbuilder.session.remove()


def test_the_version_is_recorded_in_our_own_table(engine: Engine) -> None:
    pre_migration_database(engine)
    migrations.upgrade(engine)
    with engine.connect() as connection:
        recorded = connection.execute(text(f"SELECT version_num FROM {migrations.VERSION_TABLE}"))
        assert [row[0] for row in recorded] == [migrations.head()]
    assert "alembic_version" not in inspect(engine).get_table_names()


def test_fab_and_host_tables_are_never_touched(engine: Engine) -> None:
    pre_migration_database(engine)
    with engine.begin() as connection:
        # A host application with its own Alembic history (Flask-Migrate's version table).
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('hosts0001')"))
        connection.execute(text("CREATE TABLE host_note (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO host_note VALUES (1, 'the host''s own')"))
    untouched = not_ours(engine)
    assert {"ab_user", "ab_role", "alembic_version", "host_note"} <= set(untouched)
    migrations.upgrade(engine)
    assert not_ours(engine) == untouched
    with engine.connect() as connection:
        assert migrations.differences(connection) == []  # nor proposed for removal
    migrations.downgrade(engine, "base")
    assert our_tables(engine) == set()
    assert not_ours(engine) == untouched
    migrations.upgrade(engine)
    assert migrations.status(engine).state is State.UP_TO_DATE


def test_a_partial_schema_is_refused_not_guessed(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    pre_migration_database(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE portus_activity"))
    with pytest.raises(migrations.MigrationError, match="portus_activity are missing"):
        migrations.upgrade(engine)
    with caplog.at_level(logging.ERROR, "portus_fab.migrations"):
        assert migrations.prepare_schema(engine, migrate=True) is False
    assert "portus_activity are missing" in caplog.text
    assert migrations.status(engine).current is None  # nothing was recorded


def test_a_database_ahead_of_the_code_is_left_alone(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    fab_tables(engine)
    migrations.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'"))
    with caplog.at_level(logging.WARNING, "portus_fab.migrations"):
        assert migrations.prepare_schema(engine, migrate=True) is True
    assert "newer code has migrated it" in caplog.text
    assert migrations.status(engine).state is State.UNKNOWN


def _waiting_on_flock(lock_file: Path) -> bool:
    """Someone blocks on `lock_file`'s flock (/proc/locks lists waiters with "->")."""
    inode = f":{os.stat(lock_file).st_ino} "
    return any(
        "->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_a_second_starter_waits_then_finds_nothing_to_do(engine: Engine) -> None:
    fab_tables(engine)
    outcome: list[Any] = []

    def second_worker() -> None:
        try:
            outcome.append(migrations.upgrade(engine))
        except Exception as error:  # noqa: BLE001 - the test reports it
            outcome.append(error)

    with sqlite.writer_lock(engine):  # the first worker, migrating
        worker = threading.Thread(target=second_worker)
        worker.start()
        wait_until(
            lambda: _waiting_on_flock(Path(f"{engine.url.database}-writer.lock")),
            message="the second worker waits for the lock",
        )
        with engine.begin() as connection:
            command.upgrade(migrations.config(connection), "head")
    worker.join(timeout=30)
    assert [getattr(result, "state", result) for result in outcome] == [State.UP_TO_DATE]


def test_without_auto_migrate_a_database_behind_is_an_error_and_the_cli_fixes_it(
    tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "portus_fab.migrations"):
        app = create_app(app_config(tmp_path, PORTUS_AUTO_MIGRATE=False))
    assert "run `flask --app run portus db upgrade`" in caplog.text
    with app.app_context():
        runner = app.test_cli_runner()
        behind = runner.invoke(args=["portus", "db", "current", "--check"])
        assert behind.exit_code == 1 and "(behind)" in behind.output
        doctor = runner.invoke(args=["portus", "doctor"])
        assert "FAIL database schema: at no revision" in doctor.output
        assert "run `flask --app run portus db upgrade`" in doctor.output
        upgraded = runner.invoke(args=["portus", "db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        assert "(up to date)" in upgraded.output
        assert runner.invoke(args=["portus", "db", "current", "--check"]).exit_code == 0
        assert "ok   database schema: at " in runner.invoke(args=["portus", "doctor"]).output
        stamped = runner.invoke(args=["portus", "db", "stamp", "nonesuch"])
        assert stamped.exit_code == 1 and "nonesuch" in stamped.output
        app.appbuilder.session.remove()
    assert our_tables(engine) == {table.name for table in portus_tables()}


def test_flask_portus_db_upgrade_from_the_command_line(tmp_path: Path, engine: Engine) -> None:
    pre_migration_database(engine)
    environment = {
        **os.environ,
        "PORTUS_DATA_DIR": str(tmp_path),
        "PORTUS_AUTO_MIGRATE": "false",  # the command itself migrates, not the app's start
        "PORTUS_BROKER_URL": "memory://",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "run", "portus", "db", "upgrade"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"at {migrations.head()}" in result.stdout
    assert migrations.status(engine).state is State.UP_TO_DATE
    kept = ROWS["portus_tag"]
    assert rows(engine, "portus_tag", list(kept[0])) == kept
