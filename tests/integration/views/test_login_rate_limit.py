"""Failed sign-ins are limited per address (PORTUS_LOGIN_RATE_LIMIT), on the web form and on
FAB's JSON sign-in; successful ones are not counted; the registry's endpoints are not limited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.settings import Settings
from portus_fab.views.hardening import _limiter_storage
from tests.conftest import add_user, make_app
from tests.support.routes import ADMIN, PASSWORD, USER, csrf_token

LIMIT = 3
ATTACKER = {"REMOTE_ADDR": "203.0.113.7"}
COLLEAGUE = {"REMOTE_ADDR": "203.0.113.8"}


def limited_app(template_dir: Path, data_dir: Path, **overrides: object) -> Flask:
    # FAB's JSON sign-in signs a JWT with the secret key: PyJWT wants 32 bytes at least.
    secret = "a-test-secret-key-of-at-least-32-bytes"
    app = make_app(template_dir, data_dir, WTF_CSRF_ENABLED=True, SECRET_KEY=secret, **overrides)
    with app.app_context():
        add_user(app, ADMIN, PASSWORD, admin=True)
        add_user(app, USER, PASSWORD)
        app.appbuilder.session.remove()
    return app


@pytest.fixture
def strict_app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = limited_app(template_dir, tmp_path / "data", PORTUS_LOGIN_RATE_LIMIT=f"{LIMIT} per hour")
    with app.app_context():
        yield app


def client_from(app: Flask, address: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update(address)
    return client


def sign_in_status(client: FlaskClient, username: str, password: str) -> int:
    """The answer to one sign-in through the real form (with its CSRF token): 302 to the index
    when signed in, 302 back to /login/ when refused, 429 when limited."""
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    answer = client.post(
        "/login/", data={"username": username, "password": password, "csrf_token": token}
    )
    if answer.status_code == 302 and "/login" in answer.headers["Location"]:
        return 401
    return answer.status_code


def test_after_the_limit_of_failures_even_the_right_password_is_refused(strict_app: Flask) -> None:
    attacker = client_from(strict_app, ATTACKER)
    assert [sign_in_status(attacker, USER, f"guess-{n}") for n in range(LIMIT)] == [401] * LIMIT
    assert sign_in_status(attacker, USER, PASSWORD) == 429
    # Another address still signs in: the limit is per address, not a lockout of the account.
    assert sign_in_status(client_from(strict_app, COLLEAGUE), USER, PASSWORD) == 302


def test_successful_sign_ins_are_not_counted(strict_app: Flask) -> None:
    for _ in range(LIMIT * 3):
        assert sign_in_status(client_from(strict_app, COLLEAGUE), USER, PASSWORD) == 302
    assert sign_in_status(client_from(strict_app, COLLEAGUE), USER, "wrong") == 401


def test_the_json_sign_in_is_limited_too(strict_app: Flask) -> None:
    attacker = client_from(strict_app, ATTACKER)
    attempt = {"username": USER, "password": "guess", "provider": "db"}
    answers = [
        attacker.post("/api/v1/security/login", json=attempt).status_code for _ in range(LIMIT)
    ]
    assert answers == [401] * LIMIT
    right = {**attempt, "password": PASSWORD}
    assert attacker.post("/api/v1/security/login", json=right).status_code == 429
    other = client_from(strict_app, COLLEAGUE)
    assert other.post("/api/v1/security/login", json=right).status_code == 200


def test_the_registry_endpoints_are_not_limited(strict_app: Flask) -> None:
    """An address refused sign-in still gets tokens and delivers notifications: docker and the
    registry must never see a 429 from the web sign-in's limit."""
    attacker = client_from(strict_app, ATTACKER)
    for n in range(LIMIT):
        sign_in_status(attacker, USER, f"guess-{n}")
    assert sign_in_status(attacker, USER, PASSWORD) == 429
    for _ in range(LIMIT * 2):
        token = attacker.get("/v2/token?service=127.0.0.1:5000", auth=(USER, PASSWORD))
        assert token.status_code == 200
        events = attacker.post(
            "/v2/webhooks/events",
            json={"events": []},
            headers={"Authorization": "Bearer test-webhook-secret"},
        )
        assert events.status_code == 200


def test_the_default_limit_is_on(template_dir: Path, tmp_path: Path) -> None:
    app = limited_app(template_dir, tmp_path / "data")
    with app.app_context():
        default = app.extensions["portus_fab"].settings.login_rate_limit
        assert default == "10 per minute"
        attacker = client_from(app, ATTACKER)
        assert {sign_in_status(attacker, USER, f"guess-{n}") for n in range(10)} == {401}
        assert sign_in_status(attacker, USER, PASSWORD) == 429


def test_off_turns_the_limit_off(template_dir: Path, tmp_path: Path) -> None:
    # The lockout, another brake (test_lockout.py), would lock olivia from there after 10.
    app = limited_app(
        template_dir,
        tmp_path / "data",
        PORTUS_LOGIN_RATE_LIMIT="off",
        PORTUS_LOCKOUT_ACCOUNT_THRESHOLD="0",
    )
    with app.app_context():
        attacker = client_from(app, ATTACKER)
        assert {sign_in_status(attacker, USER, f"guess-{n}") for n in range(12)} == {401}
        assert sign_in_status(attacker, USER, PASSWORD) == 302


def test_a_limit_that_does_not_parse_stops_the_app() -> None:
    with pytest.raises(ValueError):
        Settings.load({"PORTUS_LOGIN_RATE_LIMIT": "ten a minute", "PORTUS_DATA_DIR": "/tmp"})


def test_processes_share_the_count_through_redis_only() -> None:
    assert _limiter_storage("redis://redis:6379/0") == "redis://redis:6379/0"
    assert _limiter_storage("rediss://:pw@redis:6380/1") == "rediss://:pw@redis:6380/1"
    assert _limiter_storage("sqla+sqlite:////data/broker.db") == "memory://"
    assert _limiter_storage("memory://") == "memory://"
