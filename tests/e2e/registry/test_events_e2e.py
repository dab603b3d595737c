"""Registry events end to end: real registry -> webhook -> real Redis -> real Celery worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from run import worker_command
from tests.conftest import add_user
from tests.e2e.conftest import Stack, start_stack
from tests.support.oci import build_image_layout, build_index_layout
from tests.support.services import Process, Redis, Registry, registry_base_config
from tests.support.wait import free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
ADMIN = ("root", "root-pw")


class EventsStack:
    def __init__(self, stack: Stack, redis: Redis, worker: Process) -> None:
        self.stack, self.redis, self.worker = stack, redis, worker

    def cli(self, *args: str) -> Any:
        with self.stack.app.app_context():
            result = self.stack.cli(*args)
            self.stack.app.appbuilder.session.remove()
        return result

    def show(self, reference: str) -> dict[str, Any] | None:
        result = self.cli("portus", "repo", "show", reference, "--json")
        return json.loads(result.output) if result.exit_code == 0 else None

    def wait_for(self, reference: str, predicate: Any, message: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            shown = self.show(reference)
            return shown if shown is not None and predicate(shown) else None

        return wait_until(check, timeout=30, message=f"{message}\n{self.worker.log_tail()}")


def _worker(workdir: Path, stack: Stack, redis: Redis) -> Process:
    config = stack.app.config
    env = {
        "PORTUS_DATA_DIR": config["PORTUS_DATA_DIR"],
        "PORTUS_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "PORTUS_BROKER_URL": redis.url,
        "PORTUS_REGISTRY_URL": config["PORTUS_REGISTRY_URL"],
        "PORTUS_PUBLIC_URL": config["PORTUS_PUBLIC_URL"],
        "PORTUS_WEBHOOK_SECRET": config["PORTUS_WEBHOOK_SECRET"],
        "PORTUS_SWEEP_INTERVAL": "2",
        "PORTUS_SYNC_INTERVAL": "0",
        "PYTHONPATH": str(ROOT),
    }
    command = worker_command("--without-mingle", "--without-gossip")
    worker = Process("celery", command, env=env, cwd=ROOT, log_dir=workdir, startup_timeout=60)
    worker.ready = lambda: "ready." in worker.log_path.read_text()
    return worker


@pytest.fixture(scope="module")
def events(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventsStack]:
    workdir = tmp_path_factory.mktemp("events")
    redis = Redis(workdir / "redis")
    with redis:
        for stack in start_stack(template_dir, workdir, PORTUS_BROKER_URL=redis.url):
            with stack.app.app_context():
                add_user(stack.app, ADMIN[0], ADMIN[1], admin=True)
                stack.app.appbuilder.session.remove()
            with _worker(workdir, stack, redis) as worker:
                yield EventsStack(stack, redis, worker)


def _layout(tmp_path: Path, tag: str, **labels: str) -> str:
    build_image_layout(tmp_path, tag, files={f"{tag}.txt": tag.encode()}, labels=labels)
    return f"{tmp_path}:{tag}"


def test_push_is_enriched(events: EventsStack, tmp_path: Path) -> None:
    layout = _layout(tmp_path, "v1", maintainer="qa")
    pushed = events.stack.skopeo("root").copy(layout, "tools:v1", creds=ADMIN)
    assert pushed.returncode == 0, pushed.stderr
    tag = events.wait_for("tools:v1", lambda t: t["enriched"], "tools:v1 never enriched")
    assert tag["digest"].startswith("sha256:")
    assert tag["size"] > 0
    assert tag["platforms"] == ["linux/amd64"]
    assert tag["created"].startswith("2024-01-01")
    assert tag["labels"] == {"maintainer": "qa"}
    assert tag["pushed_by"] == "root"


def test_multi_platform_index_is_one_tag(events: EventsStack, tmp_path: Path) -> None:
    build_index_layout(tmp_path, "multi", [("linux", "amd64", None), ("linux", "arm64", "v8")])
    pushed = events.stack.skopeo("root").copy(
        f"{tmp_path}:multi", "tools:multi", creds=ADMIN, all_images=True
    )
    assert pushed.returncode == 0, pushed.stderr
    tag = events.wait_for("tools:multi", lambda t: t["enriched"], "index never enriched")
    assert sorted(tag["platforms"]) == ["linux/amd64", "linux/arm64/v8"]
    assert tag["media_type"] == "application/vnd.oci.image.index.v1+json"


def test_pull_counts_and_delete_removes(events: EventsStack, tmp_path: Path) -> None:
    client = events.stack.skopeo("root")
    assert client.copy(_layout(tmp_path, "p1"), "pulled:p1", creds=ADMIN).returncode == 0
    before = events.wait_for("pulled:p1", lambda t: t["enriched"], "p1 never enriched")
    assert client.inspect("pulled:p1", creds=ADMIN).returncode == 0
    after = events.wait_for(
        "pulled:p1", lambda t: t["pull_count"] > before["pull_count"], "pull not counted"
    )
    assert after["last_pulled_at"] is not None

    deleted = client.delete("pulled:p1", creds=ADMIN)
    assert deleted.returncode == 0, deleted.stderr
    wait_until(lambda: events.show("pulled:p1") is None, timeout=20, message="tag not removed")
    wait_until(lambda: events.show("pulled") is None, timeout=20, message="repo not removed")


def test_push_while_redis_is_down_is_enriched_later(events: EventsStack, tmp_path: Path) -> None:
    events.redis.stop()
    try:
        pushed = events.stack.skopeo("root").copy(
            _layout(tmp_path, "down"), "outage:down", creds=ADMIN
        )
        assert pushed.returncode == 0, pushed.stderr
        stored = events.wait_for("outage:down", lambda t: True, "event not stored")
        assert stored["enriched"] is False
    finally:
        events.redis.start()
    events.wait_for("outage:down", lambda t: t["enriched"], "the sweep never enriched it")


def test_sync_adopts_images_pushed_behind_our_back(events: EventsStack, tmp_path: Path) -> None:
    # A second registry without auth or notifications on the same storage: what an existing
    # registry held before portus_fab was pointed at it.
    port = free_port()
    storage = events.stack.workdir / "storage"
    legacy = Registry(json.dumps(registry_base_config(port, storage)), tmp_path / "legacy")
    with legacy:
        copy = events.stack.skopeo("legacy").run(
            [
                "copy",
                "--dest-tls-verify=false",
                f"oci:{_layout(tmp_path, 'old')}",
                f"docker://127.0.0.1:{port}/legacy/app:old",
            ]
        )
        assert copy.returncode == 0, copy.stderr
    assert events.show("legacy/app") is None

    dry = events.cli("portus", "sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would adopt namespace legacy" in dry.output
    assert events.show("legacy/app") is None

    real = events.cli("portus", "sync")
    assert real.exit_code == 0, real.output
    repository = events.show("legacy/app")
    assert repository is not None and repository["visibility"] == "private"
    assert [tag["name"] for tag in repository["tags"]] == ["old"]
    events.wait_for("legacy/app:old", lambda t: t["enriched"], "synced tag never enriched")
