"""A poison manifest next to a good image, end to end: real registry -> webhook -> real Redis ->
real Celery worker. The poison (two layers claiming 2^62 bytes each, accepted by the registry)
is pushed over raw HTTP with a token from our token endpoint, then the good image with skopeo.
The worker describes the good one, marks the poison failed with the reason, and the sweep never
sends it again. (That one bad digest never stops the rest of its batch is shown, batch by
batch, in tests/integration/catalog/test_enrich_isolation.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.e2e.registry.test_events_e2e import ADMIN, EventsStack, events  # noqa: F401 - the fixture
from tests.support.oci import build_image_layout
from tests.support.pusher import RawPusher, canonical
from tests.support.wait import wait_until

HUGE = 1 << 62
# Global repositories: admins may push there.
POISON, GOOD = "poison-bad", "poison-good"


def _token_for(stack: EventsStack) -> object:
    def token_for(repository: str) -> str:
        answer = requests.get(
            f"{stack.stack.portus_url}/v2/token",
            params={
                "service": stack.stack.registry.host,
                "scope": f"repository:{repository}:pull,push",
            },
            auth=ADMIN,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    return token_for


def _sweeps(stack: EventsStack) -> int:
    return len(re.findall(r"Task portus_fab\.sweep\[\S+\] succeeded", _log(stack)))


def _log(stack: EventsStack) -> str:
    return stack.worker.log_path.read_text()


def test_poison_manifest_fails_alone(events: EventsStack, tmp_path: Path) -> None:  # noqa: F811
    pusher = RawPusher(events.stack.registry.url, _token_for(events))  # type: ignore[arg-type]
    build_image_layout(tmp_path, "v1", files={"good.txt": b"good"}, labels={"ok": "yes"})
    config = canonical({"architecture": "amd64", "os": "linux", "config": {}})

    layer = pusher.blob(POISON, b"a real layer")
    poison = pusher.image(POISON, "v1", config, [layer | {"size": HUGE}] * 2)
    pushed = events.stack.skopeo("root").copy(f"{tmp_path}:v1", f"{GOOD}:v1", creds=ADMIN)
    assert pushed.returncode == 0, pushed.stderr

    good = events.wait_for(f"{GOOD}:v1", lambda t: t["enriched"], "good image never enriched")
    assert not good["enrich_failed"] and good["labels"] == {"ok": "yes"} and good["size"] > 0
    bad = events.wait_for(f"{POISON}:v1", lambda t: t["enriched"], "poison never settled")
    assert bad["enrich_failed"]
    assert bad["enrich_error"] == (f"image {poison}: layer #0: size {HUGE} is outside 0..{1 << 40}")
    assert bad["size"] is None and bad["images"] == []

    # The sweep runs on, and never sends the failed digest again.
    warning = f"{POISON}@{poison} cannot be described"
    failures, sweeps = _log(events).count(warning), _sweeps(events)
    wait_until(lambda: _sweeps(events) >= sweeps + 2, timeout=30, message="no sweep ran")
    assert _log(events).count(warning) == failures
    doctor = events.cli("portus", "doctor")
    assert f"FAIL enrichment failures: 1 tags could not be described, latest: {POISON}:v1" in (
        doctor.output
    )
