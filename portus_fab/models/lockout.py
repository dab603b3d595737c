"""Failed sign-ins and the locks they cause, in the database so that every process (each gunicorn
worker, each app on the same database) counts the same failures and honours the same locks.

Written only by portus_fab.auth.lockout.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portus_fab.models.activity import ADDRESS_MAX
from portus_fab.models.base import Model

# A claimed username is whatever a client sent: longer ones are cut to this for counting (no
# account has a longer name: FAB's column is 64, a robot's NAMESPACE+NAME at most this).
CLAIMED_NAME_MAX = 255


class SignInFailure(Model):
    """One failed sign-in: the name it claimed (lowercased when usernames are case-insensitive,
    existing or not) and the client's address. Removed when they lead to a lock, when a lock is
    lifted, and once older than the counting window."""

    __tablename__ = "portus_sign_in_failure"
    __table_args__ = (
        Index("ix_portus_sign_in_failure_at", "at"),  # pruned past the window
        Index("ix_portus_sign_in_failure_address", "address", "at"),
        Index("ix_portus_sign_in_failure_pair", "username", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(CLAIMED_NAME_MAX), nullable=False)
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class SignInLock(Model):
    """Sign-in refused from `address` until `until`: for the account `username`, or for every
    account when `username` is None (too many failures from the address across names)."""

    __tablename__ = "portus_sign_in_lock"
    __table_args__ = (Index("ix_portus_sign_in_lock_address", "address", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str | None] = mapped_column(String(CLAIMED_NAME_MAX))
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX), nullable=False)
    locked_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    until: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)

    def __repr__(self) -> str:  # FAB's list screen shows a row by its repr
        who = self.username if self.username is not None else "any account"
        return f"{who} from {self.address}"
