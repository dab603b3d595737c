"""Parser for the registry's notification envelopes: never raises, judges each event alone."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from portus_fab.registry.limits import ACTION_MAX, ACTOR_MAX, EVENT_ID_MAX, MEDIA_TYPE_MAX
from portus_fab.registry.manifests import MANIFEST_MEDIA_TYPES, parse_rfc3339
from portus_fab.registry.names import validate_digest, validate_repository_name, validate_tag

ENVELOPE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.events.v1+json",
        "application/vnd.docker.distribution.events.v2+json",
        "application/json",
    }
)
RAW_LIMIT = 4096
# Free text nobody stores (the request's user agent and address).
_TEXT_LIMIT = 512
# An event's time is trusted from EARLIEST_EVENT_TIME to MAX_CLOCK_SKEW after its arrival;
# outside, the arrival time stands in. Later than the arrival, a registry's clock is ahead,
# and a time in the future would stay the last push or pull of its repository until then.
# Earlier, its clock was never set (1970): no registry sent notifications before 2015.
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_EVENT_TIME = datetime(2015, 1, 1, tzinfo=UTC)
# Control characters and lone surrogates would break a database column or a log line.
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

Action = Literal["push", "pull", "delete"]
_ACTIONS: frozenset[str] = frozenset({"push", "pull", "delete"})
_ACTION_RE = re.compile(rf"[a-z]{{1,{ACTION_MAX}}}")


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    event_id: str
    action: Action
    timestamp: datetime  # aware UTC; the arrival time if the registry's is missing or untrusted
    repository: str
    digest: str | None
    tag: str | None
    media_type: str | None  # None for deletes
    size: int | None
    actor: str | None  # None for anonymous requests
    user_agent: str | None
    source_addr: str | None  # the client's address (request.addr), not the registry's
    note: str | None = None  # why a value sent was replaced (stored as the event's reason)

    @property
    def is_manifest(self) -> bool:
        # A delete names a manifest by digest or tag and carries no media type.
        return self.action == "delete" or self.media_type in MANIFEST_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    event_id: str | None
    reason: str
    raw: str  # the offending JSON, cut to RAW_LIMIT characters


@dataclass(frozen=True, slots=True)
class ParsedEnvelope:
    events: list[RegistryEvent] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    ignored: int = 0  # blob events and actions not acted upon (mount, unknown ones)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # aware UTC


class _Invalid(Exception):
    """One event is unusable; carries the reason."""


def parse_envelope(
    body: bytes,
    content_type: str | None,
    max_events: int = 1000,
    max_bytes: int | None = None,
    received_at: datetime | None = None,
) -> ParsedEnvelope:
    """Split an envelope into events to act upon, rejected ones and a count of ignored ones.

    The content type does not gate parsing (registries differ in what they send); it only
    explains a body that is not an envelope. A body over `max_bytes` (a caller bounding what it
    reads reads one byte more) is rejected unparsed, saying so. `received_at` (aware; now if
    not given) bounds the events' timestamps.
    """
    received_at = received_at or datetime.now(UTC)
    if max_bytes is not None and len(body) > max_bytes:
        return _whole(f"envelope larger than {max_bytes} bytes: not parsed", body, received_at)
    media_type = (content_type or "").split(";")[0].strip().lower()
    hint = "" if media_type in ENVELOPE_MEDIA_TYPES or not media_type else f" ({media_type})"
    try:
        document = json.loads(bytes(body).decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _whole(f"body is not UTF-8{hint}: {exc}", body, received_at)
    except (ValueError, RecursionError) as exc:
        return _whole(f"body is not JSON{hint}: {_short(exc)}", body, received_at)
    if not isinstance(document, dict):
        reason = f"body is a JSON {_type_name(document)}, not an object{hint}"
        return _whole(reason, body, received_at)
    raw_events = document.get("events")
    if not isinstance(raw_events, list):
        return _whole(f"'events' is {_type_name(raw_events)}, not a list", body, received_at)

    events: list[RegistryEvent] = []
    rejected: list[RejectedEvent] = []
    ignored = 0
    seen: set[str] = set()
    for raw in raw_events[:max_events]:
        event_id = _usable_id(raw.get("id")) if isinstance(raw, dict) else None
        if event_id is not None:
            if event_id in seen:  # redelivery inside one envelope: the first one wins
                continue
            seen.add(event_id)
        try:
            event = _parse_event(raw, received_at)
        except _Invalid as exc:
            rejected.append(RejectedEvent(event_id, str(exc), _raw(raw)))
            continue
        if event is None:
            ignored += 1
        else:
            events.append(event)
    if len(raw_events) > max_events:
        excess = len(raw_events) - max_events
        rejected.append(
            RejectedEvent(
                None,
                f"{excess} events beyond the limit of {max_events} per envelope were dropped",
                _raw(raw_events[max_events]),
            )
        )
    return ParsedEnvelope(events, rejected, ignored, received_at)


def _parse_event(raw: object, received_at: datetime) -> RegistryEvent | None:
    """The event to act upon, None for one to ignore; raises _Invalid with the reason."""
    if not isinstance(raw, dict):
        raise _Invalid(f"event is a JSON {_type_name(raw)}, not an object")
    event_id = raw.get("id")
    if event_id is None:
        raise _Invalid("event has no id")
    if not isinstance(event_id, str):
        raise _Invalid(f"event id is a JSON {_type_name(event_id)}, not a string")
    if len(event_id) > EVENT_ID_MAX:
        raise _Invalid(f"event id is longer than {EVENT_ID_MAX} characters")
    if _usable_id(event_id) is None:
        raise _Invalid("event id is empty or has unprintable characters")
    action = raw.get("action")
    if not isinstance(action, str) or not _ACTION_RE.fullmatch(action):
        raise _Invalid("event has no action" if action is None else "event action is invalid")
    if action not in _ACTIONS:
        return None

    target = _object(raw, "target")
    repository = target.get("repository")
    if repository is None:
        raise _Invalid("target.repository is missing")
    if error := validate_repository_name(repository):
        raise _Invalid(f"target.repository: {error}")
    digest = _optional(target, "target.digest", str)
    if digest is not None and (error := validate_digest(digest)):
        raise _Invalid(f"target.digest: {error}")
    tag = _optional(target, "target.tag", str) or None  # pushes by digest may send an empty tag
    if tag is not None and (error := validate_tag(tag)):
        raise _Invalid(f"target.tag: {error}")
    media_type = _optional(target, "target.mediaType", str) or None
    # The known types (almost every event's) fit: only others are looked at.
    if (
        media_type is not None
        and media_type not in MANIFEST_MEDIA_TYPES
        and (error := _unstorable(media_type, MEDIA_TYPE_MAX))
    ):
        raise _Invalid(f"target.mediaType {error}")
    size = _optional(target, "target.size", int)
    if size is not None and size < 0:
        raise _Invalid("target.size is negative")
    actor = _optional(_object(raw, "actor"), "actor.name", str) or None
    if actor is not None and len(actor) > ACTOR_MAX:
        raise _Invalid(f"actor.name is {len(actor)} characters long, at most {ACTOR_MAX}")
    request = _object(raw, "request")
    user_agent = _text(_optional(request, "request.useragent", str))
    source_addr = _text(_optional(request, "request.addr", str))
    timestamp, note = _bounded(parse_rfc3339(raw.get("timestamp")), received_at)

    if action == "delete":
        if digest is None and tag is None:
            raise _Invalid("delete names neither a digest nor a tag")
    elif media_type not in MANIFEST_MEDIA_TYPES:
        return None  # a blob push or pull
    elif digest is None and action == "push":
        raise _Invalid("manifest push without a digest")
    elif digest is None and tag is None:
        raise _Invalid("manifest pull names neither a digest nor a tag")
    return RegistryEvent(
        event_id=event_id,
        action=action,  # type: ignore[arg-type]  # narrowed by the _ACTIONS check above
        timestamp=timestamp,
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        size=size,
        actor=_text(actor),
        user_agent=user_agent,
        source_addr=source_addr,
        note=note,
    )


def _bounded(timestamp: datetime | None, received_at: datetime) -> tuple[datetime, str | None]:
    """The event's time, and why it is not the registry's if it is not (see MAX_CLOCK_SKEW)."""
    if timestamp is None:
        return received_at, None
    if timestamp > received_at + MAX_CLOCK_SKEW:
        why = f"more than {MAX_CLOCK_SKEW.total_seconds() / 60:.0f} minutes after its arrival"
    elif timestamp < EARLIEST_EVENT_TIME:
        why = f"before {EARLIEST_EVENT_TIME:%Y-%m-%d}"
    else:
        return timestamp, None
    return received_at, f"timestamp {timestamp.isoformat()} is {why}: the arrival time is used"


def _usable_id(value: object) -> str | None:
    """The id if it is fit to store and deduplicate on."""
    if isinstance(value, str) and not _unstorable(value, EVENT_ID_MAX):
        return value
    return None


def _unstorable(value: str, limit: int) -> str | None:
    """Why `value` cannot go into its column as it is, or None."""
    if not value:
        return "is empty"
    if len(value) > limit:
        return f"is {len(value)} characters long, at most {limit}"
    if _UNPRINTABLE_RE.search(value):
        return "has unprintable characters"
    return None


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object; a missing one is empty, one of another JSON type is an error."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(f"{key} is a JSON {_type_name(value)}, not an object")
    return value


def _optional(parent: dict[str, Any], path: str, kind: type[str] | type[int]) -> Any:
    """parent[last part of path] if present and of JSON type `kind`; None if absent."""
    value = parent.get(path.rpartition(".")[2])
    # bool is an int subclass, but `true` is no size.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        expected = "string" if kind is str else "integer"
        raise _Invalid(f"{path} is a JSON {_type_name(value)}, not a {expected}")
    return value


def _text(value: str | None) -> str | None:
    """Free text from the registry, made safe to store; empty means absent."""
    if not value:
        return None
    return _UNPRINTABLE_RE.sub("?", value[:_TEXT_LIMIT]) or None


def _type_name(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    return type(value).__name__


def _short(exc: Exception) -> str:
    return str(exc)[:200] or type(exc).__name__


def _raw(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (ValueError, RecursionError) as exc:
        return f"<not representable: {_short(exc)}>"
    return text[:RAW_LIMIT]


def _whole(reason: str, body: bytes, received_at: datetime) -> ParsedEnvelope:
    """The whole envelope is unusable: one rejection, raw body kept as far as it decodes (NUL,
    which PostgreSQL cannot store in text, replaced as undecodable bytes are)."""
    raw = bytes(body[:RAW_LIMIT]).decode("utf-8", "replace").replace("\x00", "\ufffd")
    return ParsedEnvelope(rejected=[RejectedEvent(None, reason, raw)], received_at=received_at)
