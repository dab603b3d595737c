"""The one way an entry point (a request, a CLI command, a task) ends its unit of work.

Domain functions only add and flush; whoever called them from outside decides whether the work
stands. `transaction` commits when the block ends normally and rolls back on any exception, so
a change that fails leaves nothing behind, its audit record included (portus_fab.audit adds to
the same session).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def transaction(session: Session, *, commit: bool = True, fresh: bool = False) -> Iterator[Session]:
    """Run the block as one transaction of `session`.

    `commit=False` rolls back even when the block succeeds (a dry run reports exactly what a
    real run would change). `fresh=True` first ends the entry point's own reads, so the block
    sees writes made meanwhile by other processes (on SQLite a read transaction keeps its
    snapshot); only for an entry point that has changed nothing yet.
    """
    if fresh:
        session.commit()
    try:
        yield session
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()  # a failed commit too: the session stays usable
        raise
