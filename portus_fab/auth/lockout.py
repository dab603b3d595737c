"""Guessing passwords gets nowhere: failed sign-ins are counted per (claimed account, client
address) and per address, and past a threshold the pair or the whole address is locked for a
while, right password or not. The web sign-in, FAB's JSON sign-in and the token endpoint (every
credential kind) count into the same tables, so every process and every surface sees the same
counts and locks.

Per pair as well as per address, so that an attacker elsewhere cannot lock a user out: a lock
names the address the failures came from, and the user's own address is not it. The claimed
name is counted whether or not such an account exists, so a lock says nothing about who exists.

Cost: nothing on a returning client's cached success. Locks are checked on the slow path only
(a credential cache miss, which already hashes a password); a new lock bumps the policy epoch,
so every process's cached successes drop and the next request of a locked pair takes the slow
path and is refused. Locks are rare (each takes a threshold of failed hashes), so the bump costs
nothing in practice. A lock that expires or is lifted needs no bump: nothing was cached while
it held.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from portus_fab.audit import Kind, Target, TargetType, record
from portus_fab.errors import Unauthenticated
from portus_fab.models.activity import ADDRESS_MAX
from portus_fab.models.epoch import bump_epoch
from portus_fab.models.lockout import CLAIMED_NAME_MAX, SignInFailure, SignInLock
from portus_fab.models.namespaces import utcnow
from portus_fab.models.sqlite import writer_lock
from portus_fab.models.transaction import transaction
from portus_fab.settings import Settings


@dataclass(frozen=True, slots=True)
class Attempt:
    """Whom a sign-in claims to be and where it comes from, as counted."""

    username: str
    address: str


class Locked(Unauthenticated):
    """A sign-in refused, before any password check, because its pair or address is locked."""

    def __init__(self, lock: SignInLock, now: dt.datetime) -> None:
        self.retry_after = max(1, math.ceil((lock.until - now).total_seconds()))
        super().__init__(describe(lock, now))


def describe(lock: SignInLock, now: dt.datetime) -> str:
    """The refusal's message: what is locked, from where, and for how long."""
    who = f"for {lock.username!r}" if lock.username is not None else "for every account"
    return (
        f"too many failed sign-ins: sign-in {who} from {lock.address} is locked for "
        f"{_duration(lock.until - now)} more (until {lock.until:%Y-%m-%d %H:%M:%S} UTC)"
    )


def _duration(left: dt.timedelta) -> str:
    seconds = max(1, math.ceil(left.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _target(lock: SignInLock) -> Target:
    if lock.username is None:
        return Target(TargetType.ADDRESS, lock.address)
    return Target(TargetType.ACCOUNT, lock.username)


def _details(lock: SignInLock) -> dict[str, object]:
    return {
        "address": lock.address,
        "account": lock.username,
        "until": lock.until.isoformat(),
        "failures": lock.failures,
    }


class Lockout:
    """The counting and the locks, with the thresholds of the settings. `clock` gives naive UTC
    times, as stored (tests move it instead of waiting)."""

    def __init__(
        self,
        *,
        account_threshold: int,
        address_threshold: int,
        window: int,
        duration: int,
        case_insensitive: bool,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.account_threshold = account_threshold
        self.address_threshold = address_threshold
        self.window = dt.timedelta(seconds=window)
        self.duration = dt.timedelta(seconds=duration)
        self.case_insensitive = case_insensitive
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, case_insensitive: bool) -> Lockout:
        return cls(
            account_threshold=settings.lockout_account_threshold,
            address_threshold=settings.lockout_address_threshold,
            window=settings.lockout_window,
            duration=settings.lockout_duration,
            case_insensitive=case_insensitive,
        )

    def attempt(self, username: str, address: str | None) -> Attempt:
        """Names are counted as they are matched (FAB's AUTH_USERNAME_CI), so `Alice` and
        `alice` share a count."""
        name = username.lower() if self.case_insensitive else username
        return Attempt(name[:CLAIMED_NAME_MAX], (address or "")[:ADDRESS_MAX])

    def check(self, engine: Engine, attempt: Attempt) -> None:
        """Raise Locked, and record the refusal, if a lock holds for the attempt's pair or
        address; one indexed query otherwise."""
        now = self.clock()
        with Session(engine) as session, transaction(session):
            lock = session.scalars(
                select(SignInLock)
                .where(
                    SignInLock.address == attempt.address,
                    SignInLock.until > now,
                    or_(SignInLock.username == attempt.username, SignInLock.username.is_(None)),
                )
                .order_by(SignInLock.until.desc())
                .limit(1)
            ).first()
            if lock is None:
                return
            record(
                session,
                Kind.SIGN_IN_REFUSED_LOCKED,
                target=Target(TargetType.ACCOUNT, attempt.username),
                details={**_details(lock), "address": attempt.address},
            )
            session.expunge(lock)
        raise Locked(lock, now)

    def failed(self, engine: Engine, attempt: Attempt) -> list[SignInLock]:
        """Count a failed sign-in; the locks it caused (recorded, and the policy epoch bumped so
        that no process answers a locked pair from its cache)."""
        now = self.clock()
        cutoff = now - self.window
        # Guessing comes in floods: on SQLite, queue the failures' writes on the writer lock
        # instead of letting them poll for the database's.
        with writer_lock(engine), Session(engine) as session, transaction(session):
            session.execute(delete(SignInFailure).where(SignInFailure.at <= cutoff))
            session.execute(delete(SignInLock).where(SignInLock.until <= now))
            session.add(SignInFailure(username=attempt.username, address=attempt.address, at=now))
            session.flush()
            locks = [
                lock
                for lock in (
                    self._lock_past(session, self.account_threshold, attempt, attempt.username),
                    self._lock_past(session, self.address_threshold, attempt, None),
                )
                if lock is not None
            ]
            if locks:
                bump_epoch(session)
            for lock in locks:
                record(session, Kind.SIGN_IN_LOCKED, target=_target(lock), details=_details(lock))
            session.flush()
            session.expunge_all()
        return locks

    def _lock_past(
        self, session: Session, threshold: int, attempt: Attempt, username: str | None
    ) -> SignInLock | None:
        """Lock `username` (None: every account) from the attempt's address when the failures
        counted for it reach `threshold` (0: never). The failures are spent by the lock: after
        it ends, or is lifted, counting starts again from nothing."""
        if threshold <= 0:
            return None
        counted = [SignInFailure.address == attempt.address]
        if username is not None:
            counted.append(SignInFailure.username == username)
        failures = session.scalar(select(func.count()).select_from(SignInFailure).where(*counted))
        if failures is None or failures < threshold:
            return None
        session.execute(delete(SignInFailure).where(*counted))
        now = self.clock()
        lock = SignInLock(
            username=username,
            address=attempt.address,
            locked_at=now,
            until=now + self.duration,
            failures=failures,
        )
        session.add(lock)
        return lock

    def active(
        self, session: Session, *, username: str | None = None, address: str | None = None
    ) -> list[SignInLock]:
        """The locks that hold now, newest first; `username` matches pair locks for that name
        (as counted), `address` any lock from that address."""
        query = select(SignInLock).where(SignInLock.until > self.clock())
        if username is not None:
            query = query.where(SignInLock.username == self.attempt(username, None).username)
        if address is not None:
            query = query.where(SignInLock.address == address)
        return list(session.scalars(query.order_by(SignInLock.locked_at.desc())))

    def lift(self, session: Session, locks: list[SignInLock]) -> None:
        """Lift the locks, recorded in `session` (the caller commits), and forget the failures
        counted towards them, so the next mistake does not lock again at once."""
        for lock in locks:
            failures = delete(SignInFailure).where(SignInFailure.address == lock.address)
            if lock.username is not None:
                failures = failures.where(SignInFailure.username == lock.username)
            session.execute(failures)
            record(session, Kind.SIGN_IN_UNLOCKED, target=_target(lock), details=_details(lock))
            session.delete(lock)
        session.flush()
