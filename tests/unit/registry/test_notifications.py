from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portus_fab.registry.manifests import (
    BLOB_MEDIA_TYPE,
    DOCKER_MANIFEST,
    OCI_INDEX,
    SCHEMA1_SIGNED_MANIFEST,
)
from portus_fab.registry.notifications import (
    RAW_LIMIT,
    ParsedEnvelope,
    RegistryEvent,
    parse_envelope,
)

V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
MANIFEST_DIGEST = "sha256:" + "1" * 64
BLOB_DIGEST = "sha256:" + "2" * 64


def event(action: str = "push", **target: Any) -> dict[str, Any]:
    """An event shaped like the ones registry 2.8.2 sends (skopeo as the client)."""
    method = {"push": "PUT", "pull": "GET", "delete": "DELETE", "mount": "POST"}[action]
    return {
        "id": str(uuid.uuid4()),
        "timestamp": "2024-05-01T12:34:56.123456789+02:00",
        "action": action,
        "target": {"repository": "alice/app", **target},
        "request": {
            "id": str(uuid.uuid4()),
            "addr": "192.0.2.7:51234",
            "host": "registry.example.com:5000",
            "method": method,
            "useragent": "skopeo/1.9.3",
        },
        "actor": {"name": "alice"},
        "source": {"addr": "registry:5000", "instanceID": str(uuid.uuid4())},
    }


def blob(action: str) -> dict[str, Any]:
    return event(
        action,
        mediaType=BLOB_MEDIA_TYPE,
        size=2811478,
        digest=BLOB_DIGEST,
        length=2811478,
        url=f"http://registry:5000/v2/alice/app/blobs/{BLOB_DIGEST}",
    )


def manifest(action: str, **extra: Any) -> dict[str, Any]:
    fields = {
        "mediaType": DOCKER_MANIFEST,
        "size": 528,
        "digest": MANIFEST_DIGEST,
        "length": 528,
        "url": f"http://registry:5000/v2/alice/app/manifests/{MANIFEST_DIGEST}",
        "tag": "latest",
    }
    return event(action, **{**fields, **extra})


def envelope(*events: Any) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def parse(*events: Any, content_type: str | None = V1, **kwargs: Any) -> ParsedEnvelope:
    return parse_envelope(envelope(*events), content_type, **kwargs)


def only_reason(result: ParsedEnvelope) -> str:
    assert not result.events
    assert len(result.rejected) == 1
    return result.rejected[0].reason


@pytest.mark.parametrize(
    "content_type", [V1, V2, "application/json", f"{V1}; charset=utf-8", None, ""]
)
def test_push_of_an_image(content_type: str | None) -> None:
    layer, config, top = blob("push"), blob("push"), manifest("push")
    result = parse(layer, config, top, content_type=content_type)
    assert result.rejected == []
    assert result.ignored == 2
    assert result.events == [
        RegistryEvent(
            event_id=top["id"],
            action="push",
            timestamp=datetime(2024, 5, 1, 10, 34, 56, 123456, tzinfo=UTC),
            repository="alice/app",
            digest=MANIFEST_DIGEST,
            tag="latest",
            media_type=DOCKER_MANIFEST,
            size=528,
            actor="alice",
            user_agent="skopeo/1.9.3",
            source_addr="192.0.2.7:51234",
        )
    ]
    assert result.events[0].is_manifest
    assert result.events[0].timestamp.utcoffset() == timedelta(0)


def test_pulls_by_tag_and_blob_pulls() -> None:
    result = parse(manifest("pull"), blob("pull"), manifest("pull", tag=None))
    assert [(e.action, e.tag) for e in result.events] == [("pull", "latest"), ("pull", None)]
    assert result.ignored == 1


def test_pull_by_tag_without_digest_is_accepted() -> None:
    (pulled,) = parse(manifest("pull", digest=None)).events
    assert (pulled.digest, pulled.tag) == (None, "latest")


@pytest.mark.parametrize("media_type", [OCI_INDEX, SCHEMA1_SIGNED_MANIFEST])
def test_other_manifest_types(media_type: str) -> None:
    (pushed,) = parse(manifest("push", mediaType=media_type)).events
    assert pushed.is_manifest


def test_delete_by_digest_then_by_tag() -> None:
    by_digest = event("delete", digest=MANIFEST_DIGEST)
    by_tag = event("delete", tag="latest")
    result = parse(by_digest, by_tag)
    assert result.rejected == []
    assert [(e.digest, e.tag, e.media_type) for e in result.events] == [
        (MANIFEST_DIGEST, None, None),
        (None, "latest", None),
    ]
    assert all(e.is_manifest for e in result.events)


@pytest.mark.parametrize("action", ["mount", "frobnicate"])
def test_mount_and_unknown_actions_are_ignored(action: str) -> None:
    mount = {**blob("push"), "action": action}
    result = parse(mount)
    assert (result.events, result.rejected, result.ignored) == ([], [], 1)


def test_blob_push_without_media_type_is_ignored() -> None:
    result = parse(event("push", digest=BLOB_DIGEST, size=10))
    assert (result.events, result.rejected, result.ignored) == ([], [], 1)


def test_redelivered_id_keeps_the_first() -> None:
    first = manifest("push")
    again = {**manifest("push", tag="other"), "id": first["id"]}
    result = parse(first, again)
    assert [e.tag for e in result.events] == ["latest"]
    assert result.rejected == []


def test_anonymous_actor_and_missing_request() -> None:
    pulled = manifest("pull")
    pulled["actor"] = {}
    del pulled["request"]
    (parsed,) = parse(pulled).events
    assert (parsed.actor, parsed.user_agent, parsed.source_addr) == (None, None, None)


def test_free_text_is_made_storable() -> None:
    pulled = manifest("pull")
    pulled["request"]["useragent"] = "evil\x00agent\ud800" + "x" * 2000
    (parsed,) = parse(pulled).events
    assert parsed.user_agent is not None
    assert parsed.user_agent.startswith("evil?agent?")
    assert len(parsed.user_agent) == 512


@pytest.mark.parametrize("timestamp", [None, "yesterday", 1714560000, "2024-13-01T00:00:00Z"])
def test_bad_timestamps_become_now(timestamp: object) -> None:
    pushed = with_top(timestamp=timestamp)
    before = datetime.now(UTC)
    (parsed,) = parse(pushed).events
    assert before <= parsed.timestamp <= datetime.now(UTC)


def test_timestamp_offsets_are_converted_to_utc() -> None:
    pushed = manifest("push")
    pushed["timestamp"] = "2024-05-01T00:00:00-08:00"
    (parsed,) = parse(pushed).events
    assert parsed.timestamp == datetime(2024, 5, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"[]", "JSON array, not an object"),
        (b'"events"', "JSON string, not an object"),
        (b"null", "JSON null, not an object"),
        (b"{}", "'events' is null, not a list"),
        (b'{"events": {}}', "'events' is object, not a list"),
        (b'{"events": "x"}', "'events' is string, not a list"),
        (b'{"events": [', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"events": [{"id": "\xc3\x28"}]}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b'{"events": [' + b"{" * 50_000 + b"}" * 50_000 + b"]}", "not JSON"),
        (b'{"size": 1' + b"0" * 5000 + b"}", "not JSON"),
    ],
)
def test_unusable_envelopes(body: bytes, fragment: str) -> None:
    result = parse_envelope(body, V1)
    reason = only_reason(result)
    assert fragment in reason
    assert result.rejected[0].event_id is None
    assert len(result.rejected[0].raw) <= RAW_LIMIT


def test_unexpected_content_type_is_named_when_body_is_unusable() -> None:
    reason = only_reason(parse_envelope(b"<html>", "text/html; charset=utf-8"))
    assert "(text/html)" in reason


def test_unexpected_content_type_is_still_parsed() -> None:
    assert len(parse(manifest("push"), content_type="text/plain").events) == 1


def with_target(**changes: Any) -> dict[str, Any]:
    pushed = manifest("push")
    for key, value in changes.items():
        if value is ...:
            del pushed["target"][key]
        else:
            pushed["target"][key] = value
    return pushed


def with_top(**changes: Any) -> dict[str, Any]:
    pushed = manifest("push")
    for key, value in changes.items():
        if value is ...:
            del pushed[key]
        else:
            pushed[key] = value
    return pushed


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("just a string", "event is a JSON string"),
        (["a", "list"], "event is a JSON array"),
        (with_top(id=...), "no id"),
        (with_top(id=""), "id is empty"),
        (with_top(id="a\x00b"), "unprintable"),
        (with_top(id=42), "id is a JSON number, not a string"),
        (with_top(id="x" * 300), "longer than 255"),
        (with_top(action=...), "no action"),
        (with_top(action=7), "action is invalid"),
        (with_top(action="PUSH!"), "action is invalid"),
        (with_top(target=...), "target.repository is missing"),
        (with_top(target=["alice/app"]), "target is a JSON array"),
        (with_top(actor="alice"), "actor is a JSON string"),
        (with_top(request=[]), "request is a JSON array"),
        (with_target(repository=...), "target.repository is missing"),
        (with_target(repository=5), "must be a string"),
        (with_target(repository="Alice/App"), "'Alice'"),
        (with_target(repository="a" * 256), "256 characters"),
        (with_target(repository="../etc"), "'..'"),
        (with_target(digest="md5:abc"), "not of the form"),
        (with_target(digest="sha256:" + "a" * 63), "64 hex digits"),
        (with_target(digest=...), "manifest push without a digest"),
        (with_target(digest=["sha256:x"]), "target.digest is a JSON array, not a string"),
        (with_target(tag="-bad"), "target.tag"),
        (with_target(tag="x" * 129), "target.tag"),
        (with_target(tag=1.0), "target.tag is a JSON number, not a string"),
        (with_target(size="528"), "target.size is a JSON string, not a integer"),
        (with_target(size=True), "target.size is a JSON boolean"),
        (with_target(size=-1), "negative"),
        (with_target(mediaType={}), "target.mediaType is a JSON object"),
        (event("delete"), "neither a digest nor a tag"),
        (manifest("pull", digest=None, tag=None), "neither a digest nor a tag"),
    ],
)
def test_one_bad_event_among_good_ones(bad: Any, fragment: str) -> None:
    good_before, good_after = manifest("push", tag="a"), manifest("pull", tag="b")
    result = parse(good_before, bad, good_after)
    assert [e.tag for e in result.events] == ["a", "b"]
    (rejected,) = result.rejected
    assert fragment in rejected.reason
    assert rejected.raw == json.dumps(bad)[:RAW_LIMIT]
    given_id = bad.get("id") if isinstance(bad, dict) else None
    usable = isinstance(given_id, str) and 0 < len(given_id) <= 255 and "\x00" not in given_id
    assert rejected.event_id == (given_id if usable else None)


def test_too_many_events() -> None:
    events = [manifest("push", tag=f"t{i}") for i in range(2000)]
    result = parse(*events)
    assert len(result.events) == 1000
    (rejected,) = result.rejected
    assert "1000 events beyond the limit of 1000" in rejected.reason
    assert len(rejected.raw) <= RAW_LIMIT


def test_custom_limit() -> None:
    result = parse(blob("push"), blob("push"), manifest("push"), max_events=2)
    assert (result.events, result.ignored) == ([], 2)
    assert "1 events beyond the limit of 2" in result.rejected[0].reason


def test_five_megabyte_envelope() -> None:
    huge = manifest("push")
    huge["request"]["useragent"] = "u" * (5 * 1024 * 1024)
    bad = with_target(repository="X" * (5 * 1024 * 1024))
    result = parse(huge, bad)
    assert len(result.events) == 1
    assert len(result.events[0].user_agent or "") == 512
    (rejected,) = result.rejected
    assert len(rejected.raw) == RAW_LIMIT
    assert len(rejected.reason) < 1000


def test_deep_nesting_inside_one_event() -> None:
    nested: Any = "leaf"
    for _ in range(500):
        nested = {"n": nested}
    odd = manifest("push")
    odd["target"]["references"] = nested
    odd["source"] = nested
    deep = with_top(target=[nested])
    result = parse(odd, deep)
    assert len(result.events) == 1
    assert "target is a JSON array" in result.rejected[0].reason


@pytest.mark.parametrize(
    "body",
    [
        b"\x00" * 100,
        b'{"events": [null, 1, true, [], {}, {"id": null}, {"id": {}, "action": "push"}]}',
        b'{"events": [{"id": "a", "action": "push", "target": {"repository": null}}]}',
        b'{"events": [{"id": "\\ud800", "action": "push"}]}',
        b'{"events": [{"id": "x", "action": "push", "target": {"size": NaN}}]}',
        b'{"events": [{"id": "x", "action": "push", "target": {"size": 1e400}}]}',
        "\ufeff{}".encode(),
    ],
)
def test_garbage_never_raises(body: bytes) -> None:
    result = parse_envelope(body, None)
    assert result.events == []
    assert all(r.reason for r in result.rejected)
