"""`python run.py` serves with gunicorn, beside the embedded Celery worker, and a stop - SIGTERM
to the server, or Ctrl-C - leaves no process of it running."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support.standalone import RunPy, group_members
from tests.support.wait import wait_until


def children(server: RunPy) -> tuple[list[str], list[str]]:
    """The server's children: (gunicorn workers, Celery workers)."""
    commands = [
        command for ppid, command in group_members(server.pid).values() if ppid == server.pid
    ]
    celery = [command for command in commands if "celery" in command]
    return [command for command in commands if "celery" not in command], celery


@pytest.mark.parametrize(
    ("env", "worker_class", "workers", "stop"),
    [
        ({}, "sync", 2, "SIGTERM to the server"),
        ({"PORTUS_WEB_WORKERS": "3", "PORTUS_WEB_THREADS": "2"}, "gthread", 3, "Ctrl-C"),
    ],
)
def test_run_py_serves_with_gunicorn_and_stops_everything(
    tmp_path: Path, env: dict[str, str], worker_class: str, workers: int, stop: str
) -> None:
    with RunPy(tmp_path / "data", tmp_path, env) as server:
        assert server.pid is not None
        wait_until(
            lambda: (
                "celery@" in server.log_path.read_text() and "ready." in server.log_path.read_text()
            ),
            timeout=60,
            message="the embedded Celery worker did not come up",
        )
        web, celery = wait_until(
            lambda: (found := children(server))[0] and len(found[0]) == workers and found,
            timeout=30,
            message=f"{workers} gunicorn workers did not start",
        )
        assert len(celery) == 1, celery
        if stop == "Ctrl-C":
            os.killpg(server.pid, signal.SIGINT)  # what the terminal does: the whole group
        else:
            os.kill(server.pid, signal.SIGTERM)  # a plain `kill`: the server alone
        wait_until(
            lambda: not group_members(server.pid),
            timeout=60,
            message=f"processes left running after {stop}",
        )
        log = server.log_path.read_text()
    assert f"Using worker: {worker_class}" in log
    assert "development server" not in log
    assert "Filter type not supported" not in log
