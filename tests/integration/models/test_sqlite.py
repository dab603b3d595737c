"""The embedded SQLite's writer queue and checkpoints (portus_fab.models.sqlite)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from flask import Flask
from sqlalchemy import text

from portus_fab.models import sqlite


def test_a_second_writer_waits_for_the_first(app: Flask) -> None:
    session = app.appbuilder.session
    entered: list[str] = []

    def second_writer() -> None:
        with app.app_context(), sqlite.writing(app.appbuilder.session):
            entered.append("second")

    with sqlite.writing(session):
        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(timeout=0.3)
        assert writer.is_alive() and entered == []  # held off while the first one writes
    writer.join(timeout=10)
    assert entered == ["second"]
    database = Path(session.get_bind().url.database)
    assert Path(f"{database}-writer.lock").exists()


def test_checkpoint_moves_the_write_ahead_log_into_the_database(app: Flask, tmp_path: Path) -> None:
    session = app.appbuilder.session
    session.execute(text("CREATE TABLE scratch (value TEXT)"))
    session.execute(text("INSERT INTO scratch VALUES ('checkpointed')"))
    session.commit()
    sqlite.checkpoint(session)
    # The database file alone, without its -wal file, now holds the row.
    alone = tmp_path / "alone.db"
    shutil.copyfile(session.get_bind().url.database, alone)
    with closing(sqlite3.connect(alone)) as connection:
        assert connection.execute("SELECT value FROM scratch").fetchall() == [("checkpointed",)]
