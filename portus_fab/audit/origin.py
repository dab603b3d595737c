"""Who is acting, and from which address: set by the entry point, read by `audit.record`.

A CLI command or a task says it with `acting(...)`; the web surface installs a function that
reads the request (`install_request_origin`) so a record made during a request names the logged
in user and the client's address. Outside both, the change is portus_fab's own (`SYSTEM`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    actor: str
    address: str | None = None


SYSTEM = Origin("portus_fab")
# Changes learned from the registry's notifications, and catalog syncs.
REGISTRY = Origin("registry")

_acting: ContextVar[Origin | None] = ContextVar("portus_audit_origin", default=None)
_request_origin: list[Callable[[], Origin | None]] = []
_request_address: list[Callable[[], str | None]] = []


def cli_origin() -> Origin:
    """A CLI command acts as the operating system user who ran it (by uid in a container
    whose uid has no name)."""
    try:
        return Origin(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):
        return Origin(f"cli:uid {os.getuid()}")


@contextmanager
def acting(origin: Origin) -> Iterator[Origin]:
    """Records made inside the block name `origin`."""
    token = _acting.set(origin)
    try:
        yield origin
    finally:
        _acting.reset(token)


def install_request_origin(
    read: Callable[[], Origin | None], read_address: Callable[[], str | None]
) -> None:
    """The web surface's readers of the current request's origin and of its client address
    alone (None outside a request). Idempotent: one pair per process, shared by every app."""
    _request_origin[:] = [read]
    _request_address[:] = [read_address]


def current_origin() -> Origin:
    explicit = _acting.get()
    if explicit is not None:
        return explicit
    for read in _request_origin:
        found = read()
        if found is not None:
            return found
    return SYSTEM


def current_address() -> str | None:
    """The address `current_origin()` would name, without finding out who is acting: the token
    endpoint keys its cache and its lockout by address on every request, and naming the actor
    means loading the browser session's user, which no registry client has."""
    explicit = _acting.get()
    if explicit is not None:
        return explicit.address
    for read in _request_address:
        return read()
    return None
