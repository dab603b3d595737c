"""The window of event timestamps the parser trusts, to the microsecond at both edges, and the
arrival time it stands in with outside."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from portus_fab.registry.notifications import (
    EARLIEST_EVENT_TIME,
    MAX_CLOCK_SKEW,
    parse_envelope,
)

RECEIVED = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def pushed_at(timestamp: datetime) -> dict[str, object]:
    return {
        "id": "e1",
        "timestamp": timestamp.isoformat(),
        "action": "push",
        "target": {
            "repository": "alice/app",
            "tag": "v1",
            "digest": "sha256:" + "1" * 64,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
        },
    }


@pytest.mark.parametrize(
    ("sent", "trusted"),
    [
        (RECEIVED + MAX_CLOCK_SKEW, True),
        (RECEIVED + MAX_CLOCK_SKEW + TICK, False),
        (EARLIEST_EVENT_TIME, True),
        (EARLIEST_EVENT_TIME - TICK, False),
        (RECEIVED, True),
    ],
)
def test_the_window_edges(sent: datetime, trusted: bool) -> None:
    body = json.dumps({"events": [pushed_at(sent)]}).encode()
    (event,) = parse_envelope(body, None, received_at=RECEIVED).events
    assert event.timestamp == (sent if trusted else RECEIVED)
    assert (event.note is None) == trusted
    if not trusted:
        assert "arrival time" in (event.note or "")


@pytest.mark.parametrize("body", [b"not json", b"{}", json.dumps({"events": []}).encode()])
def test_every_envelope_carries_its_arrival_time(body: bytes) -> None:
    assert parse_envelope(body, None, received_at=RECEIVED).received_at == RECEIVED
    assert parse_envelope(body, None, max_bytes=1, received_at=RECEIVED).received_at == RECEIVED
