"""Interpretation of manifests, indexes and image configs into plain immutable data."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.names import validate_digest

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
# An index is a user-controlled list of fetches: bound it.
MAX_INDEX_CHILDREN = 64

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)

FetchManifest = Callable[[str], tuple[str, bytes]]
FetchBlob = Callable[[str], bytes]


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
    skipped: list[str]  # human-readable notes on what could not be interpreted


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


def describe_manifest(
    digest: str,
    media_type: str,
    body: bytes,
    fetch_manifest: FetchManifest,
    fetch_blob: FetchBlob,
) -> ManifestDetails:
    """Interpret a manifest of any kind, fetching children and configs through the callables.

    Never raises because of malformed content (it is noted in `skipped`); a RegistryUnavailable
    raised by a callable propagates so the caller can retry later.
    """
    skipped: list[str] = []
    _check_digest(digest, body, "manifest", skipped)
    document = _load_json_object(body, f"manifest {digest}", skipped)
    kind = _effective_media_type(media_type, document)

    images: list[ImageDetails] = []
    if document is not None:  # else already noted in skipped
        if kind in IMAGE_MEDIA_TYPES:
            images.append(_describe_image(digest, kind, document, None, fetch_blob, skipped))
        elif kind in INDEX_MEDIA_TYPES:
            images = _describe_index(document, fetch_manifest, fetch_blob, skipped)
        elif kind in SCHEMA1_MEDIA_TYPES:
            images.append(_describe_schema1(digest, kind, document, skipped))
        else:
            skipped.append(f"unknown media type {media_type or '(none)'}: not interpreted")

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


def _effective_media_type(media_type: str, document: dict[str, Any] | None) -> str | None:
    """The registry's word wins; the body's mediaType only fills in for an unknown one."""
    if media_type in MANIFEST_MEDIA_TYPES:
        return media_type
    if document is None:
        return None
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
    entries = document.get("manifests")
    if not isinstance(entries, list):
        skipped.append("index has no manifests list")
        return []
    images: list[ImageDetails] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if len(seen) >= MAX_INDEX_CHILDREN:
            skipped.append(f"index has more than {MAX_INDEX_CHILDREN} children: rest not read")
            break
        if not isinstance(entry, dict) or validate_digest(entry.get("digest")) is not None:
            skipped.append(f"index entry #{position} is malformed")
            continue
        child = entry["digest"]
        if child in seen:
            continue
        seen.add(child)
        platform = _platform(entry.get("platform"))
        annotations = entry.get("annotations")
        if (platform is not None and platform.os == platform.architecture == "unknown") or (
            isinstance(annotations, dict)
            and annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        ):
            skipped.append(f"attestation manifest {child} skipped")
            continue
        declared = entry.get("mediaType")
        if declared in INDEX_MEDIA_TYPES:
            skipped.append(f"nested index {child} not followed")
            continue
        if declared not in IMAGE_MEDIA_TYPES:
            skipped.append(f"unknown media type {declared} for child {child}")
            continue
        try:
            child_type, child_body = fetch_manifest(child)
        except RegistryUnavailable:
            raise
        except RegistryError as exc:
            skipped.append(f"child {child} could not be fetched: {exc}")
            continue
        _check_digest(child, child_body, f"child {child}", skipped)
        child_document = _load_json_object(child_body, f"child {child}", skipped)
        if child_document is None:
            continue
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
    config = document.get("config")
    config_digest: str | None = None
    config_size = 0
    config_type: object = None
    if isinstance(config, dict) and validate_digest(config.get("digest")) is None:
        config_digest = config["digest"]
        config_size = _non_negative_int(config.get("size"))
        config_type = config.get("mediaType")
    else:
        skipped.append(f"image {digest}: config descriptor missing or malformed")

    layers: list[Layer] = []
    raw_layers = document.get("layers")
    for position, raw in enumerate(raw_layers if isinstance(raw_layers, list) else []):
        if isinstance(raw, dict) and validate_digest(raw.get("digest")) is None:
            media = raw.get("mediaType")
            layers.append(
                Layer(
                    digest=raw["digest"],
                    size=_non_negative_int(raw.get("size")),
                    media_type=media if isinstance(media, str) else "",
                )
            )
        else:
            skipped.append(f"image {digest}: layer #{position} is malformed")

    created: datetime | None = None
    labels: dict[str, str] = {}
    history: list[str] = []
    if config_digest is not None and config_type in IMAGE_CONFIG_MEDIA_TYPES:
        image_config = _fetch_config(config_digest, fetch_blob, skipped)
        if image_config is not None:
            created = parse_rfc3339(image_config.get("created"))
            labels = _labels(image_config, config_digest, skipped)
            history = _history(image_config.get("history"))
            platform = platform or _platform(image_config)
    elif config_digest is not None:
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
    architecture = document.get("architecture")
    os_name = "linux"
    created: datetime | None = None
    # Best effort: the newest v1Compatibility entry is a JSON string describing the image.
    history = document.get("history")
    if isinstance(history, list) and history and isinstance(history[0], dict):
        newest = _load_json_object(
            str(history[0].get("v1Compatibility", "")), "schema1 v1Compatibility", skipped
        )
        if newest is not None:
            os_name = newest["os"] if isinstance(newest.get("os"), str) else os_name
            created = parse_rfc3339(newest.get("created"))
    fs_layers = document.get("fsLayers")
    layers = [
        # schema1 lists layers newest first and does not know their sizes.
        Layer(digest=entry["blobSum"], size=0, media_type=BLOB_MEDIA_TYPE)
        for entry in reversed(fs_layers if isinstance(fs_layers, list) else [])
        if isinstance(entry, dict) and validate_digest(entry.get("blobSum")) is None
    ]
    return ImageDetails(
        digest=digest,
        media_type=media_type,
        platform=Platform(os_name, architecture) if isinstance(architecture, str) else None,
        size=0,
        created=created,
        labels={},
        layers=layers,
        history=[],
        config_digest=None,
    )


def _fetch_config(
    config_digest: str, fetch_blob: FetchBlob, skipped: list[str]
) -> dict[str, Any] | None:
    try:
        blob = fetch_blob(config_digest)
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        skipped.append(f"config {config_digest} could not be fetched: {exc}")
        return None
    _check_digest(config_digest, blob, f"config {config_digest}", skipped)
    return _load_json_object(blob, f"config {config_digest}", skipped)


def _labels(image_config: dict[str, Any], config_digest: str, skipped: list[str]) -> dict[str, str]:
    inner = image_config.get("config")
    raw = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(raw, dict):
        return {}
    labels = {k: v for k, v in raw.items() if isinstance(v, str)}
    if len(labels) != len(raw):
        skipped.append(f"config {config_digest}: labels with non-string values ignored")
    return labels


def _history(raw: object) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [
        entry["created_by"] if isinstance(entry.get("created_by"), str) else ""
        for entry in raw
        if isinstance(entry, dict)
    ]


def _platform(raw: object) -> Platform | None:
    """Platform from an index entry's `platform` or an image config (same field names)."""
    if not isinstance(raw, dict):
        return None
    os_name, architecture, variant = raw.get("os"), raw.get("architecture"), raw.get("variant")
    if not (
        isinstance(os_name, str) and os_name and isinstance(architecture, str) and architecture
    ):
        return None
    return Platform(
        os_name, architecture, variant if isinstance(variant, str) and variant else None
    )


def _non_negative_int(value: object) -> int:
    # bool is an int subclass; a JSON true is not a size.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _load_json_object(data: bytes | str, what: str, skipped: list[str]) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        skipped.append(f"{what} is not valid JSON: {exc}")
        return None
    if not isinstance(document, dict):
        skipped.append(f"{what} is not a JSON object")
        return None
    return document


def _check_digest(digest: str, body: bytes, what: str, skipped: list[str]) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha384", "sha512"):
        return
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != expected:
        skipped.append(f"{what}: content hashes to {algorithm}:{actual}, not {digest}")
