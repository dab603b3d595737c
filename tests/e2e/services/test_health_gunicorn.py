"""Anonymous `/health` calls against a hung registry must not starve the token service: the app
served by gunicorn with 2 sync workers, as the README deploys it, and a real TCP server that
accepts connections and never answers as the registry. Four such calls used to hold both workers
for 20 s, and a token request waited 19.6 s behind them."""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import add_user, make_app
from tests.support.hanging import HangingServer
from tests.support.services import Process
from tests.support.wait import free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).parent / "gunicorn"
USER, PASSWORD = "olivia", "olivia-password"
HEALTH_CALLS = 6
TOKEN_BOUND = 2.0  # seconds; a token is signed in milliseconds when a worker is free


@dataclass
class Served:
    base: str
    registry: HangingServer


@pytest.fixture
def served(template_dir: Path, tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    with HangingServer() as registry:
        app = make_app(template_dir, data_dir, PORTUS_REGISTRY_URL=registry.url)
        with app.app_context():
            add_user(app, USER, PASSWORD)
            app.appbuilder.session.remove()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "PYTHONPATH": str(ROOT),
            "PORTUS_DATA_DIR": str(data_dir),
            "PORTUS_DATABASE_URL": f"sqlite:///{data_dir / 'portus.db'}",
            "PORTUS_REGISTRY_URL": registry.url,
            "PORTUS_BROKER_URL": "memory://",
            "PORTUS_EMBEDDED_WORKER": "false",
        }
        # The default PORTUS_HEALTH_TIMEOUT and PORTUS_HEALTH_CACHE_TTL: what a deployment gets.
        args = [str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        args += ["--worker-class", "sync", "--log-level", "warning", "run:create_app()"]
        with Process(
            "gunicorn",
            args,
            env=env,
            cwd=ROOT,
            log_dir=tmp_path,
            ready=lambda: requests.get(f"{base}/login/", timeout=5).status_code == 200,
            startup_timeout=60,
        ):
            yield Served(base, registry)


def test_a_token_request_is_served_while_health_calls_wait_on_a_hung_registry(
    served: Served,
) -> None:
    answers: list[tuple[float, int]] = []

    def call_health() -> None:
        started = time.monotonic()
        status = requests.get(f"{served.base}/health", timeout=60).status_code
        answers.append((time.monotonic() - started, status))

    callers = [threading.Thread(target=call_health) for _ in range(HEALTH_CALLS)]
    for caller in callers:
        caller.start()
    # The calls are in: a check has reached the hung registry (and waits there).
    wait_until(lambda: served.registry.accepted >= 1, timeout=10, message="a health check runs")

    started = time.monotonic()
    token = requests.get(
        f"{served.base}/v2/token",
        params={
            "service": served.registry.url.removeprefix("http://"),
            "scope": f"repository:{USER}/app:pull,push",
        },
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        },
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert token.status_code == 200, token.text
    assert elapsed < TOKEN_BOUND, f"the token request waited {elapsed:.1f} s"

    deadline = time.monotonic() + 30
    for caller in callers:
        caller.join(max(0.0, deadline - time.monotonic()))
    assert len(answers) == HEALTH_CALLS, "a /health call never came back"
    assert all(status == 503 for _, status in answers), answers
    # No call waited on the registry longer than the health timeout (1 s) and some slack.
    assert max(elapsed for elapsed, _ in answers) < 3, answers
    # One refresh per worker process at most, not one per call.
    assert served.registry.accepted <= 2
