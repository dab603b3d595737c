"""What the lockout's tests share: small thresholds, two addresses, a clock they move."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from portus_fab.auth.lockout import Lockout
from portus_fab.core import EXTENSION

PAIR_THRESHOLD = 3
ADDRESS_THRESHOLD = 5
DURATION = 600
HOME = "198.51.100.7"  # the user's own address
ATTACKER = "203.0.113.66"
SERVICE = "127.0.0.1:5000"
LOCKOUT_SETTINGS = {
    "PORTUS_LOCKOUT_ACCOUNT_THRESHOLD": str(PAIR_THRESHOLD),
    "PORTUS_LOCKOUT_ADDRESS_THRESHOLD": str(ADDRESS_THRESHOLD),
    "PORTUS_LOCKOUT_DURATION": str(DURATION),
    # FAB's own per-address rate limit of the sign-in forms is a separate brake: off here, so
    # only the lockout answers.
    "PORTUS_LOGIN_RATE_LIMIT": "off",
    # FAB's JSON sign-in signs a JWT with the secret key: PyJWT wants 32 bytes at least.
    "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
}


class Clock:
    """The lockout's clock, moved by the test instead of waiting for a lock to end."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 12, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


def lockout_of(app: Flask) -> Lockout:
    return app.extensions[EXTENSION].authentication.lockout


def token(client: FlaskClient, username: str, password: str, address: str) -> Any:
    return client.get(
        f"/v2/token?service={SERVICE}",
        auth=(username, password),
        environ_base={"REMOTE_ADDR": address},
    )
