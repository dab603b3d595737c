"""Counting the SQL statements a piece of work sends (query-count tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event


@contextmanager
def count_statements(app: Flask) -> Iterator[list[str]]:
    """Every statement sent through the app's engine while the block runs (requests have their
    own session, but the same engine)."""
    engine = app.appbuilder.session.get_bind()
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
