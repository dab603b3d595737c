"""`transaction`: the one way an entry point ends its unit of work, on a real SQLite session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, create_engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from portus_fab.models.transaction import transaction


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "row"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(10), unique=True)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[tuple[Session, Session]]:
    """Two sessions on one database file: the entry point's, and another process's."""
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    with Session(engine) as mine, Session(engine) as other:
        yield mine, other
    engine.dispose()


def names(session: Session) -> list[str]:
    return list(session.scalars(select(Row.name).order_by(Row.name)))


def test_the_block_commits(sessions: tuple[Session, Session]) -> None:
    mine, other = sessions
    with transaction(mine):
        mine.add(Row(name="a"))
    assert names(other) == ["a"]


def test_an_exception_rolls_back_and_propagates(sessions: tuple[Session, Session]) -> None:
    mine, other = sessions
    with pytest.raises(LookupError), transaction(mine):
        mine.add(Row(name="a"))
        mine.flush()
        raise LookupError
    assert names(other) == names(mine) == []


def test_a_failed_commit_rolls_back_and_leaves_the_session_usable(
    sessions: tuple[Session, Session],
) -> None:
    mine, _ = sessions
    with transaction(mine):
        mine.add(Row(name="a"))
    with pytest.raises(IntegrityError), transaction(mine):
        mine.add(Row(name="a"))  # flushed by the commit itself
    with transaction(mine):
        mine.add(Row(name="b"))
    assert names(mine) == ["a", "b"]


def test_commit_false_rolls_back_a_successful_block(sessions: tuple[Session, Session]) -> None:
    mine, other = sessions
    with transaction(mine, commit=False):
        mine.add(Row(name="a"))
        mine.flush()
        assert names(mine) == ["a"]  # the block sees its own changes
    assert names(other) == names(mine) == []


def test_fresh_ends_the_entry_points_reads_first(sessions: tuple[Session, Session]) -> None:
    """So the block reads the database as it is now, not in a transaction begun before (on
    PostgreSQL's repeatable read, or a SQLite read transaction, a snapshot)."""
    mine, other = sessions
    assert mine.scalar(select(func.count(Row.id))) == 0
    assert mine.in_transaction()
    with transaction(other):
        other.add(Row(name="theirs"))
    with transaction(mine, fresh=True):
        assert not mine.in_transaction()
        assert names(mine) == ["theirs"]
