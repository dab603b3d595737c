"""Interpretation of manifests, indexes and image configs into plain immutable data.

Everything the registry hands over was written by whoever pushed: this module is the one place
that bounds it. Content outside the bounds below, or not of the types the image specs give, is
refused whole with `Undescribable`, never clamped: a clamped size or a cut label would be a
description that is false, and the tag had better say why it has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.limits import MEDIA_TYPE_MAX
from portus_fab.registry.names import validate_digest

log = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MEDIA_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
SCHEMA1_MEDIA_TYPES = frozenset({SCHEMA1_MANIFEST, SCHEMA1_SIGNED_MANIFEST})
MANIFEST_MEDIA_TYPES = IMAGE_MEDIA_TYPES | INDEX_MEDIA_TYPES | SCHEMA1_MEDIA_TYPES

# Without every type listed, the registry may rewrite schema2 to schema1 (another digest) or
# refuse an OCI manifest; schema1 comes last so it is only what old images get.
MANIFEST_ACCEPT = ", ".join(
    [
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
        SCHEMA1_SIGNED_MANIFEST,
        SCHEMA1_MANIFEST,
    ]
)
BLOB_MEDIA_TYPE = "application/octet-stream"

# Only these configs describe a runnable image; artifacts (Helm charts, signatures, the OCI empty
# descriptor) carry other configs that are not worth a blob fetch.
IMAGE_CONFIG_MEDIA_TYPES = frozenset(
    {"application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json"}
)
# The bounds of what one digest may store. Real images stay far inside them.
# An index is a user-controlled list of fetches, and each of its images a row of the tag page.
MAX_INDEX_CHILDREN = 64
# Per config or layer. A terabyte is no real layer, and MAX_LAYERS of them sum far below the
# 2^63 of a BIGINT column (and below 2^53, the exact integers of JSON readers).
MAX_BLOB_SIZE = 1 << 40
MAX_LAYERS = 1000
MAX_HISTORY = 1000  # entries of an image's history, empty layers included
MAX_LABELS = 500
# Label keys and platform fields: short identifiers (media types have MEDIA_TYPE_MAX).
MAX_NAME = 255
# A label value or a history command (a RUN with a here-document can be long).
MAX_TEXT = 64 * 1024
# Labels and history of all the images of one digest together.
MAX_TEXT_TOTAL = 1024 * 1024
# Reproducible builds date images at the epoch; a date past now (with a builder's clock running
# ahead) is no date an image was built on.
EARLIEST_CREATED = datetime(1970, 1, 1, tzinfo=UTC)
CREATED_LEEWAY = timedelta(days=1)
# How much of an offending value a reason quotes.
_QUOTED = 40

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)

# "GET http://registry:5000/v2/... -> " or "GET http://...: " that starts a client error: the
# reason is shown to anyone who may pull, and the registry's address is for admins.
_REQUEST_LINE_RE = re.compile(r"[A-Z]+ \S+(?: -> |: )")

T = TypeVar("T")
FetchManifest = Callable[[str], tuple[str, bytes]]
FetchBlob = Callable[[str], bytes]


class Undescribable(ValueError):
    """The content is invalid or out of bounds: the digest cannot be described. The message says
    which part and why; it names no host and quotes at most a few characters of the content."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ImageDetails:
    digest: str
    media_type: str
    platform: Platform | None
    size: int  # config + layers, compressed, as the manifest declares them
    created: datetime | None
    labels: dict[str, str]
    layers: list[Layer]
    history: list[str]  # created_by of every history entry, empty layers included
    config_digest: str | None  # None for schema1


@dataclass(frozen=True, slots=True)
class ManifestDetails:
    """What gets stored per tag.

    For an index, `size` is the size of its largest platform image, not the sum: a pull fetches
    one platform, so the largest one is what a user can expect at most. Per-platform sizes are in
    `images`. For a manifest that could not be interpreted it is the manifest body's length.
    """

    digest: str
    media_type: str
    size: int
    platforms: list[Platform]
    images: list[ImageDetails]
    created: datetime | None  # latest of the images
    labels: dict[str, str]  # of the first image
    skipped: list[str]  # human-readable notes on what was deliberately not interpreted


def parse_rfc3339(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (nanoseconds allowed) into aware UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    match = _RFC3339_RE.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    offset = timedelta() if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
    if sign == "-":
        offset = -offset
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        parsed = datetime(
            year, month, day, hour, minute, min(second, 59), microsecond, tzinfo=timezone(offset)
        )
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    # Go's zero time means "unset".
    return None if parsed.year == 1 else parsed


def describe_digest(
    digest: str, fetch_manifest: FetchManifest, fetch_blob: FetchBlob
) -> ManifestDetails:
    """Fetch the manifest `digest` and describe it (see `describe_manifest`)."""
    media_type, body = _fetched(f"manifest {digest}", fetch_manifest, digest)
    return describe_manifest(digest, media_type, body, fetch_manifest, fetch_blob)


def describe_manifest(
    digest: str,
    media_type: str,
    body: bytes,
    fetch_manifest: FetchManifest,
    fetch_blob: FetchBlob,
) -> ManifestDetails:
    """Interpret a manifest of any kind, fetching children and configs through the callables.

    Raises Undescribable for content that is invalid or out of bounds, an index's child or a
    config included; what is deliberately not interpreted (artifacts, attestations, nested
    indexes) is noted in `skipped`. A RegistryUnavailable raised by a callable propagates so
    the caller can retry later, and so does a refused token (401, 403): neither is the content's
    fault.
    """
    skipped: list[str] = []
    _media_type(media_type, f"manifest {digest}")
    _check_digest(digest, body, "manifest")
    document = _load_json_object(body, f"manifest {digest}")
    kind = _effective_media_type(media_type, document)

    images: list[ImageDetails] = []
    if kind in IMAGE_MEDIA_TYPES:
        images.append(_describe_image(digest, kind, document, None, fetch_blob, skipped))
    elif kind in INDEX_MEDIA_TYPES:
        images = _describe_index(document, fetch_manifest, fetch_blob, skipped)
    elif kind in SCHEMA1_MEDIA_TYPES:
        images.append(_describe_schema1(digest, kind, document, skipped))
    else:
        skipped.append(f"unknown media type {media_type or '(none)'}: not interpreted")

    text = sum(
        len(key) + len(value) for image in images for key, value in image.labels.items()
    ) + sum(len(command) for image in images for command in image.history)
    if text > MAX_TEXT_TOTAL:
        raise Undescribable(
            f"labels and history hold {text} characters, more than {MAX_TEXT_TOTAL}"
        )
    size = max((image.size for image in images), default=len(body))
    created_values = [image.created for image in images if image.created is not None]
    return ManifestDetails(
        digest=digest,
        media_type=kind or media_type,
        size=size,
        platforms=[image.platform for image in images if image.platform is not None],
        images=images,
        created=max(created_values, default=None),
        labels=dict(images[0].labels) if images else {},
        skipped=skipped,
    )


def _effective_media_type(media_type: str, document: dict[str, Any]) -> str | None:
    """The registry's word wins; the body's mediaType only fills in for an unknown one."""
    if media_type in MANIFEST_MEDIA_TYPES:
        return media_type
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared in MANIFEST_MEDIA_TYPES:
        return declared
    # Old registries serve schema1 as application/json.
    if document.get("schemaVersion") == 1 and "fsLayers" in document:
        return SCHEMA1_MANIFEST
    return None


def _describe_index(
    document: dict[str, Any],
    fetch_manifest: FetchManifest,
    fetch_blob: FetchBlob,
    skipped: list[str],
) -> list[ImageDetails]:
    entries = _list(document.get("manifests"), "index manifests", MAX_INDEX_CHILDREN)
    images: list[ImageDetails] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        what = f"index entry #{position}"
        child, _, declared = _descriptor(entry, what)
        if child in seen:
            continue
        seen.add(child)
        platform = _platform(entry.get("platform"), what)
        annotations = entry.get("annotations")
        if (platform is not None and platform.os == platform.architecture == "unknown") or (
            isinstance(annotations, dict)
            and annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        ):
            skipped.append(f"attestation manifest {child} skipped")
            continue
        if declared in INDEX_MEDIA_TYPES:
            skipped.append(f"nested index {child} not followed")
            continue
        if declared not in IMAGE_MEDIA_TYPES:
            skipped.append(f"unknown media type {declared} for child {child}")
            continue
        child_type, child_body = _fetched(f"child {child}", fetch_manifest, child)
        _check_digest(child, child_body, f"child {child}")
        child_document = _load_json_object(child_body, f"child {child}")
        kind = child_type if child_type in IMAGE_MEDIA_TYPES else declared
        images.append(_describe_image(child, kind, child_document, platform, fetch_blob, skipped))
    return images


def _describe_image(
    digest: str,
    media_type: str,
    document: dict[str, Any],
    platform: Platform | None,
    fetch_blob: FetchBlob,
    skipped: list[str],
) -> ImageDetails:
    config_digest, config_size, config_type = _descriptor(
        document.get("config"), f"image {digest}: config"
    )
    layers = [
        Layer(*_descriptor(raw, f"image {digest}: layer #{position}"))
        for position, raw in enumerate(
            _list(document.get("layers"), f"image {digest}: layers", MAX_LAYERS)
        )
    ]

    created: datetime | None = None
    labels: dict[str, str] = {}
    history: list[str] = []
    if config_type in IMAGE_CONFIG_MEDIA_TYPES:
        what = f"config {config_digest}"
        blob = _fetched(what, fetch_blob, config_digest)
        _check_digest(config_digest, blob, what)
        image_config = _load_json_object(blob, what)
        created = _created(image_config.get("created"), what)
        labels = _labels(image_config.get("config"), what)
        history = _history(image_config.get("history"), what)
        platform = platform or _platform(image_config, what)
    else:
        skipped.append(f"image {digest}: config media type {config_type} not interpreted")

    return ImageDetails(
        digest=digest,
        media_type=media_type,
        platform=platform,
        size=config_size + sum(layer.size for layer in layers),
        created=created,
        labels=labels,
        layers=layers,
        history=history,
        config_digest=config_digest,
    )


def _describe_schema1(
    digest: str, media_type: str, document: dict[str, Any], skipped: list[str]
) -> ImageDetails:
    skipped.append("schema1 manifest: no config")
    architecture = _optional_name(document.get("architecture"), "schema1 architecture")
    os_name = "linux"
    created: datetime | None = None
    # Best effort: the newest v1Compatibility entry is a JSON string describing the image.
    history = document.get("history")
    if isinstance(history, list) and history and isinstance(history[0], dict):
        what = "schema1 v1Compatibility"
        newest = _load_json_object(str(history[0].get("v1Compatibility", "")), what)
        os_name = _optional_name(newest.get("os"), f"{what} os") or os_name
        created = _created(newest.get("created"), what)
    fs_layers = _list(document.get("fsLayers"), "schema1 fsLayers", MAX_LAYERS)
    if not fs_layers:
        raise Undescribable("schema1 manifest lists no fsLayers")
    layers = []
    # schema1 lists layers newest first and does not know their sizes.
    for position, entry in reversed(list(enumerate(fs_layers))):
        blob_sum = entry.get("blobSum") if isinstance(entry, dict) else None
        if validate_digest(blob_sum) is not None:
            raise Undescribable(f"schema1 fsLayers #{position} has no valid blobSum")
        layers.append(Layer(digest=str(blob_sum), size=0, media_type=BLOB_MEDIA_TYPE))
    return ImageDetails(
        digest=digest,
        media_type=media_type,
        platform=Platform(os_name, architecture) if architecture else None,
        size=0,
        created=created,
        labels={},
        layers=layers,
        history=[],
        config_digest=None,
    )


def _fetched(what: str, fetch: Callable[[str], T], reference: str) -> T:
    try:
        return fetch(reference)
    except RegistryUnavailable:
        raise
    except RegistryError as error:
        if error.status in (401, 403):
            raise  # the registry does not trust our token: a setting to fix, not the content
        if error.status == 404:
            raise Undescribable(f"{what} is not in the registry") from error
        reason = _REQUEST_LINE_RE.sub("", str(error), count=1)
        raise Undescribable(f"{what} could not be fetched: {reason}") from error


def _descriptor(raw: object, what: str) -> tuple[str, int, str]:
    """(digest, size, media type) of an OCI descriptor, each checked."""
    if not isinstance(raw, dict):
        raise Undescribable(f"{what} is not a descriptor")
    digest = raw.get("digest")
    if validate_digest(digest) is not None:
        raise Undescribable(f"{what} has no valid digest")
    return str(digest), _size(raw.get("size"), what), _media_type(raw.get("mediaType"), what)


def _size(value: object, what: str) -> int:
    # bool is an int subclass; a JSON true is not a size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Undescribable(f"{what}: size {_quote(value)} is not an integer")
    if not 0 <= value <= MAX_BLOB_SIZE:
        raise Undescribable(f"{what}: size {_quote(value)} is outside 0..{MAX_BLOB_SIZE}")
    return value


def _media_type(value: object, what: str) -> str:
    """A descriptor's media type; missing is "" (schema2 configs of old tools have none)."""
    if value is None:
        return ""
    return _string(value, f"{what}: media type", MEDIA_TYPE_MAX)


def _string(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Undescribable(f"{what} {_quote(value)} is not a string")
    if len(value) > limit:
        raise Undescribable(f"{what} is {len(value)} characters long, more than {limit}")
    return value


def _optional_name(value: object, what: str) -> str | None:
    return None if value is None or value == "" else _string(value, what, MAX_NAME)


def _list(value: object, what: str, limit: int) -> list[Any]:
    """A JSON array of at most `limit` entries; missing (or null) is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Undescribable(f"{what} is not a list")
    if len(value) > limit:
        raise Undescribable(f"{what} has {len(value)} entries, more than {limit}")
    return value


def _created(value: object, what: str) -> datetime | None:
    """An image's creation time; None when unset (missing, or Go's zero time)."""
    if value is None:
        return None
    parsed = parse_rfc3339(value)
    if parsed is None:
        match = _RFC3339_RE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is not None and match.group(1) == "0001":
            return None
        raise Undescribable(f"{what}: created {_quote(value)} is not an RFC 3339 time")
    latest = datetime.now(UTC) + CREATED_LEEWAY
    if not EARLIEST_CREATED <= parsed <= latest:
        raise Undescribable(
            f"{what}: created {parsed:%Y-%m-%d} is outside {EARLIEST_CREATED:%Y-%m-%d}..now"
        )
    return parsed


def _labels(inner: object, what: str) -> dict[str, str]:
    raw = inner.get("Labels") if isinstance(inner, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Undescribable(f"{what}: labels are not an object")
    if len(raw) > MAX_LABELS:
        raise Undescribable(f"{what}: {len(raw)} labels, more than {MAX_LABELS}")
    return {
        _string(key, f"{what}: label key", MAX_NAME): _string(
            value, f"{what}: label {key[:_QUOTED]!r}", MAX_TEXT
        )
        for key, value in raw.items()
    }


def _history(raw: object, what: str) -> list[str]:
    commands = []
    for position, entry in enumerate(_list(raw, f"{what}: history", MAX_HISTORY)):
        if not isinstance(entry, dict):
            raise Undescribable(f"{what}: history #{position} is not an object")
        command = entry.get("created_by")
        commands.append(
            "" if command is None else _string(command, f"{what}: history #{position}", MAX_TEXT)
        )
    return commands


def _platform(raw: object, what: str) -> Platform | None:
    """Platform from an index entry's `platform` or an image config (same field names); None
    when it names no os and architecture."""
    if not isinstance(raw, dict):
        return None
    os_name = _optional_name(raw.get("os"), f"{what}: os")
    architecture = _optional_name(raw.get("architecture"), f"{what}: architecture")
    variant = _optional_name(raw.get("variant"), f"{what}: variant")
    if not (os_name and architecture):
        return None
    return Platform(os_name, architecture, variant)


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTED else text[: _QUOTED - 3] + "..."


def _load_json_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Undescribable(f"{what} is not valid JSON: {str(exc)[:100]}") from exc
    if not isinstance(document, dict):
        raise Undescribable(f"{what} is not a JSON object")
    return document


def _check_digest(digest: str, body: bytes, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha384", "sha512"):
        return
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != expected:
        raise Undescribable(f"{what}: content hashes to {algorithm}:{actual}, not {digest}")
