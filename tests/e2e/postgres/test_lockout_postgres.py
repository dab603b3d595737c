"""The sign-in lockout on a real PostgreSQL: two apps (two processes' worth of caches) on one
database count the same failures and honour the same lock, on the token endpoint and the web
sign-in; an admin's lift is seen by both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from portus_fab.core import EXTENSION
from run import create_app
from tests.conftest import FAST_HASH, IsolatedClient, add_user
from tests.support.routes import signed_in
from tests.support.services import Postgres

pytestmark = pytest.mark.e2e

THRESHOLD = 3
ATTACKER = "203.0.113.66"
HOME = "198.51.100.7"
SERVICE = "127.0.0.1:5000"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


def pg_app(url: str, data_dir: Path) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "a-test-secret-key-of-at-least-32-bytes",
            "SQLALCHEMY_DATABASE_URI": url,
            "PORTUS_DATA_DIR": str(data_dir),
            "PORTUS_WEBHOOK_SECRET": "pg-secret",
            "PORTUS_BROKER_URL": "memory://",
            "PORTUS_LOGIN_RATE_LIMIT": "off",
            "PORTUS_LOCKOUT_ACCOUNT_THRESHOLD": str(THRESHOLD),
            "FAB_PASSWORD_HASH_METHOD": FAST_HASH,
            "WTF_CSRF_ENABLED": False,
        }
    )
    app.test_client_class = IsolatedClient
    return app


def status(app: Flask, password: str, address: str) -> int:
    answer = app.test_client().get(
        f"/v2/token?service={SERVICE}",
        auth=("alice", password),
        environ_base={"REMOTE_ADDR": address},
    )
    return answer.status_code


def test_two_apps_on_one_postgres_share_the_lock(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database("lockout_shared")
    first, second = pg_app(url, tmp_path / "one"), pg_app(url, tmp_path / "two")
    with first.app_context():
        if first.appbuilder.sm.find_role("User") is None:
            first.appbuilder.sm.add_role("User")
        add_user(first, "alice", "right")
        assert status(second, "right", ATTACKER) == 200  # cached by the second app
        for _ in range(THRESHOLD):
            assert status(first, "wrong", ATTACKER) == 401
        assert status(second, "right", ATTACKER) == 401
        assert status(second, "right", HOME) == 200
        browser = second.test_client()
        browser.environ_base["REMOTE_ADDR"] = ATTACKER
        browser.post("/login/", data={"username": "alice", "password": "right"})
        assert not signed_in(browser)
        session = first.appbuilder.session
        lockout = first.extensions[EXTENSION].authentication.lockout
        lockout.lift(session, lockout.active(session))
        session.commit()
        assert status(second, "right", ATTACKER) == 200
        session.remove()
    for app in (first, second):
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()
