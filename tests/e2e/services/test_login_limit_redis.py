"""With a Redis broker, the failed sign-ins of every process count together: two apps (as two
gunicorn workers would be) over one real Redis share one limit; without Redis, each process
counts on its own rather than refusing every sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import add_user, make_app
from tests.support.routes import csrf_token
from tests.support.services import Redis

pytestmark = pytest.mark.e2e

LIMIT = 4
ATTACKER = "203.0.113.21"
COLLEAGUE = "203.0.113.22"


def worker(template_dir: Path, data_dir: Path, broker: str) -> Flask:
    return make_app(
        template_dir,
        data_dir,
        WTF_CSRF_ENABLED=True,
        PORTUS_BROKER_URL=broker,
        PORTUS_LOGIN_RATE_LIMIT=f"{LIMIT} per hour",
    )


def sign_in_status(client: FlaskClient, password: str) -> int:
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    data = {"username": "olivia", "password": password, "csrf_token": token}
    return client.post("/login/", data=data).status_code


def test_two_processes_share_one_count(template_dir: Path, tmp_path: Path) -> None:
    with Redis(tmp_path / "redis") as redis:
        first = worker(template_dir, tmp_path / "data", redis.url)
        with first.app_context():
            add_user(first, "olivia", "pw")
            first.appbuilder.session.remove()
        # The second worker: its own app and limiter, the same database and broker.
        second = worker(tmp_path / "data", tmp_path / "data2", redis.url)
        clients = []
        for app in (first, second):
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = ATTACKER
            clients.append(client)
        answers = [sign_in_status(clients[n % 2], f"guess-{n}") for n in range(LIMIT)]
        assert answers == [302] * LIMIT  # each back to the sign-in form
        assert sign_in_status(clients[0], "pw") == 429
        assert sign_in_status(clients[1], "pw") == 429
    # Redis is gone: sign-in still works, and each process still limits in its own memory.
    colleague = first.test_client()
    colleague.environ_base["REMOTE_ADDR"] = COLLEAGUE
    assert sign_in_status(colleague, "pw") == 302
    colleague = first.test_client()
    colleague.environ_base["REMOTE_ADDR"] = COLLEAGUE
    assert [sign_in_status(colleague, "guess") for _ in range(LIMIT)] == [302] * LIMIT
    assert sign_in_status(colleague, "pw") == 429
