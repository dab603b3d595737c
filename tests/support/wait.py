"""Polling and port helpers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 15,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet". At the deadline an AssertionError
    names ``message`` and the last value or exception (chained as the cause).
    """
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            value = predicate()
        except Exception as exc:
            error = exc
            last = f"exception {exc!r}"
        else:
            if value:
                return value
            last = f"value {value!r}"
        if time.monotonic() >= deadline:
            text = message or "condition not met"
            raise AssertionError(f"{text} (after {timeout:g}s; last {last})") from error
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
