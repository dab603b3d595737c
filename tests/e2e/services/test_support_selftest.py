"""Self-test of tests/support against the real docker-registry, redis-server and skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.oci import INDEX, MANIFEST, REF_NAME, build_image_layout, build_index_layout
from tests.support.services import Redis, Registry, ServiceError, registry_base_config
from tests.support.skopeo import Skopeo
from tests.support.wait import free_port, wait_until

pytestmark = pytest.mark.e2e


def test_wait_until_reports_last_exception() -> None:
    assert wait_until(lambda: 3, timeout=0.1) == 3

    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(AssertionError, match=r"never ready .*KeyError\('missing'\)"):
        wait_until(boom, timeout=0.1, message="never ready")


def test_startup_failure_includes_log_tail(tmp_path: Path) -> None:
    registry = Registry(json.dumps({"http": {"addr": f"127.0.0.1:{free_port()}"}}), tmp_path)
    with pytest.raises(ServiceError, match="exited with code") as info:
        registry.start()
    assert "configuration" in str(info.value).lower()
    assert not registry.running


def test_registry_skopeo_and_redis(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    image_digest = build_image_layout(
        layout,
        "v1",
        files={"hello.txt": b"hello"},
        labels={"maintainer": "qa"},
        architecture="arm64",
        variant="v8",
        history=["FROM scratch", "COPY hello.txt /"],
    )
    index_digest = build_index_layout(
        layout,
        "multi",
        [("linux", "amd64", None), ("linux", "arm", "v7")],
        files={"app/bin": b"\x7fELF"},
    )
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    assert [m["annotations"][REF_NAME] for m in entries] == ["v1", "multi"]

    config = registry_base_config(free_port(), tmp_path / "storage")
    with (
        Registry(json.dumps(config), tmp_path / "registry") as registry,
        Redis(tmp_path / "redis") as redis,
    ):
        skopeo = Skopeo(registry.host, tmp_path / "auth")
        local = skopeo.run(["inspect", "--raw", f"oci:{layout}:v1"])
        assert json.loads(local.stdout)["mediaType"] == MANIFEST

        pushed = skopeo.copy(f"{layout}:v1", "test/img:v1")
        assert pushed.returncode == 0, pushed.stderr
        pushed = skopeo.copy(f"{layout}:multi", "test/img:multi", all_images=True)
        assert pushed.returncode == 0, pushed.stderr

        info = json.loads(skopeo.inspect("test/img:v1").stdout)
        assert (info["Architecture"], info["Digest"]) == ("arm64", image_digest)
        assert info["Labels"] == {"maintainer": "qa"}
        raw_index = json.loads(skopeo.inspect("test/img:multi", raw=True).stdout)
        assert raw_index["mediaType"] == INDEX
        assert [m["platform"]["architecture"] for m in raw_index["manifests"]] == ["amd64", "arm"]
        assert json.loads(skopeo.inspect("test/img:multi").stdout)["Architecture"] == "amd64"
        assert sorted(json.loads(skopeo.list_tags("test/img").stdout)["Tags"]) == ["multi", "v1"]

        pulled = skopeo.pull(f"test/img@{index_digest}", tmp_path / "pulled")
        assert pulled.returncode == 0, pulled.stderr

        deleted = skopeo.delete("test/img:v1")
        assert deleted.returncode == 0, deleted.stderr
        assert skopeo.inspect("test/img:v1").returncode != 0

        port = redis.port
        assert redis.ping()
        redis.stop()
        with pytest.raises(OSError):
            redis.ping()
        redis.start()
        assert (redis.port, redis.ping()) == (port, True)
