"""The data dir and every file in it are their owner's only, whoever creates them (portus_fab,
SQLite, Celery and its beat) and whenever (SQLite creates its -wal and -shm files again later),
even from a shell whose umask lets everyone read; what is written for the registry stays
readable by it."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support.standalone import ROOT, UNSET, RunPy
from tests.support.wait import wait_until

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def readable_by_others(data_dir: Path) -> dict[str, str]:
    """Path -> mode of the data dir and of everything in it that its group or others may use."""
    paths = [data_dir, *data_dir.rglob("*")]
    modes = {str(path): stat.S_IMODE(path.lstat().st_mode) for path in paths}
    return {path: oct(mode) for path, mode in modes.items() if mode & 0o077}


def push_envelope() -> bytes:
    target = {
        "mediaType": MANIFEST_MEDIA_TYPE,
        "size": 528,
        "digest": "sha256:" + "ab" * 32,
        "length": 528,
        "repository": "modes/app",
        "tag": "v1",
    }
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "action": "push",
        "target": target,
        "request": {"id": str(uuid.uuid4()), "method": "PUT", "useragent": "skopeo/1.9.3"},
        "actor": {"name": "someone"},
        "source": {"addr": "registry:5000"},
    }
    return json.dumps({"events": [event]}).encode()


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers or {}), timeout=30
        ) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def tags(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM portus_tag").fetchone()[0])


def test_nothing_in_the_data_dir_is_readable_by_others_after_start_and_activity(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with RunPy(data_dir, tmp_path, umask=0o022) as server:
        secret = (data_dir / "webhook_secret").read_text().strip()
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": EVENTS_MEDIA_TYPE}
        url = f"{server.base}/v2/webhooks/events"
        assert request(url, push_envelope(), headers) == 200
        wait_until(lambda: tags(data_dir / "portus.db") == 1, message="the push was not applied")
        assert request(f"{server.base}/v2/token?scope=repository:modes/app:pull") < 500
        assert request(f"{server.base}/health") in (200, 503)  # the registry is not there
        # Celery's broker and beat schedule, and SQLite's write-ahead log, exist by now.
        wait_until(
            lambda: (
                {"broker.db", "portus.db-wal"} <= {p.name for p in data_dir.iterdir()}
                and any(p.name.startswith("beat") for p in data_dir.iterdir())
            ),
            timeout=60,
            message="the worker did not create its files",
        )
        assert readable_by_others(data_dir) == {}
    assert readable_by_others(data_dir) == {}


def test_a_cli_command_on_a_new_data_dir_creates_it_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" -m flask --app run portus jwks', sys.executable],
        env={**os.environ, **dict.fromkeys(UNSET, ""), "PORTUS_DATA_DIR": str(data_dir)},
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert (data_dir / "portus.db").exists()
    assert readable_by_others(data_dir) == {}


def test_the_certificate_written_for_the_registry_is_readable_by_it(
    runner: Any, tmp_path: Path
) -> None:
    """The registry often runs as another user: --write-cert is the one file made for it."""
    path = tmp_path / "registry" / "portus.crt"
    result = runner.invoke(args=["portus", "registry-config", "--write-cert", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
