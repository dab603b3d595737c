"""`GET /health` with a registry that accepts connections and never answers: callers answer from
the cached checks, one refresh runs at a time, and only admins may ask for fresh ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import add_user, make_app
from tests.support.hanging import HangingServer
from tests.support.wait import wait_until

PASSWORD = "secret"
TIMEOUT = 0.5  # PORTUS_HEALTH_TIMEOUT
CALLERS = 8


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    with HangingServer() as server:
        yield server


def health_app(template_dir: Path, tmp_path: Path, registry: HangingServer, ttl: float) -> Flask:
    return make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_REGISTRY_URL=registry.url,
        PORTUS_HEALTH_TIMEOUT=str(TIMEOUT),
        PORTUS_HEALTH_CACHE_TTL=str(ttl),
    )


@pytest.fixture
def app(template_dir: Path, tmp_path: Path, hanging: HangingServer) -> Iterator[Flask]:
    app = health_app(template_dir, tmp_path, hanging, ttl=60)
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def timed_get(client: FlaskClient, url: str = "/health") -> tuple[float, int, dict[str, object]]:
    started = time.monotonic()
    response = client.get(url)
    return time.monotonic() - started, response.status_code, response.get_json()


def concurrently(app: Flask, count: int) -> list[tuple[float, int, dict[str, object]]]:
    results: list[tuple[float, int, dict[str, object]]] = []
    lock = threading.Lock()

    def call() -> None:
        result = timed_get(app.test_client())
        with lock:
            results.append(result)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == count, "a /health call did not come back"
    return results


def test_concurrent_anonymous_calls_do_not_wait_on_the_registry(
    app: Flask, hanging: HangingServer
) -> None:
    """Each call used to ask the hung registry itself (10 s each, one worker each)."""
    first = concurrently(app, CALLERS)
    # A process's first calls wait for its first checks, at most the health timeout.
    assert max(elapsed for elapsed, _, _ in first) < TIMEOUT + 1.5, first
    assert all(status == 503 and body == {"status": "failing"} for _, status, body in first)
    wait_until(lambda: hanging.accepted == 1, timeout=10, message="one refresh reached it")
    later = concurrently(app, CALLERS)
    assert max(elapsed for elapsed, _, _ in later) < 0.5, later
    assert all(status == 503 and body == {"status": "failing"} for _, status, body in later)
    # No stampede: one refresh for all of those callers, and none while the result is fresh.
    assert hanging.accepted == 1


def test_admins_see_why_and_may_ask_for_fresh_checks(app: Flask, hanging: HangingServer) -> None:
    add_user(app, "boss", PASSWORD, admin=True)
    add_user(app, "olivia", PASSWORD)
    admin = login(app, "boss")
    elapsed, status, body = timed_get(admin)
    assert status == 503 and elapsed < TIMEOUT + 1.5
    # Still running when the health timeout passed (named as such), or just done: failing.
    ok = {check["name"]: check["ok"] for check in body["checks"]}  # type: ignore[union-attr]
    assert ok.get("self-checks") is False or ok.get("registry") is False, ok

    def admin_checks() -> dict[str, dict[str, object]]:
        body = timed_get(admin)[2]
        return {check["name"]: check for check in body["checks"]}  # type: ignore[union-attr]

    wait_until(lambda: "registry" in admin_checks(), message="the refresh finishes")
    checks = admin_checks()
    assert checks["registry"]["ok"] is False and hanging.url in checks["registry"]["detail"]
    assert checks["database"]["ok"] is True
    assert hanging.accepted == 1

    # Anyone else's ?fresh=1 is the cached answer: it neither waits nor reaches the registry.
    for client in (app.test_client(), login(app, "olivia")):
        elapsed, status, body = timed_get(client, "/health?fresh=1")
        assert elapsed < 0.5 and status == 503 and body == {"status": "failing"}
    assert hanging.accepted == 1
    # An admin's runs the checks again, bounded by their timeouts.
    elapsed, status, body = timed_get(admin, "/health?fresh=1")
    assert status == 503 and elapsed < 3 * TIMEOUT + 1.5
    assert hanging.accepted == 2


def test_checks_are_refreshed_once_older_than_the_ttl(
    template_dir: Path, tmp_path: Path, hanging: HangingServer
) -> None:
    app = health_app(template_dir, tmp_path, hanging, ttl=0.5)
    with app.app_context():
        client = app.test_client()
        client.get("/health")
        wait_until(lambda: hanging.accepted == 1, timeout=10)

        def refreshed_without_waiting() -> bool:
            elapsed, status, _ = timed_get(client)
            assert elapsed < 0.5 and status == 503
            return hanging.accepted >= 2

        wait_until(refreshed_without_waiting, timeout=10, message="a refresh after the TTL")
        app.appbuilder.session.remove()


def test_doctor_is_bounded_by_the_registry_timeout(
    template_dir: Path, tmp_path: Path, hanging: HangingServer
) -> None:
    app = make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_REGISTRY_URL=hanging.url,
        PORTUS_REGISTRY_TIMEOUT="1",
    )
    with app.app_context():
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["portus", "doctor"])
        elapsed = time.monotonic() - started
        assert result.exit_code == 1
        assert "FAIL registry: unreachable" in result.output
        assert elapsed < 4, f"doctor took {elapsed:.1f} s"
        app.appbuilder.session.remove()
