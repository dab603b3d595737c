"""Build OCI image layouts (images and multi-platform indexes) in pure Python, no daemon."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# Fixed so that building the same content twice gives the same digest.
DEFAULT_CREATED = datetime(2024, 1, 1, tzinfo=UTC)

Platform = tuple[str, str, str | None]  # (os, architecture, variant)


def build_image_layout(
    path: Path,
    tag: str,
    *,
    files: dict[str, bytes],
    labels: dict[str, str] | None = None,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    created: datetime | None = None,
    history: list[str] | None = None,
) -> str:
    """Write a one-layer image into the layout at ``path``, tag it, return the manifest digest."""
    descriptor = _write_image(
        path,
        files=files,
        labels=labels,
        platform=(os, architecture, variant),
        created=created,
        history=history,
    )
    _tag(path, descriptor, tag)
    return str(descriptor["digest"])


def build_index_layout(
    path: Path,
    tag: str,
    platforms: list[Platform],
    *,
    files: dict[str, bytes] | None = None,
    labels: dict[str, str] | None = None,
    created: datetime | None = None,
    history: list[str] | None = None,
) -> str:
    """Write one image per platform and an image index over them; tag it, return its digest.

    Each image gets an extra ``platform.txt`` naming its platform, so the layers differ.
    """
    manifests = [
        _write_image(
            path,
            files={**(files or {}), "platform.txt": _platform_name(platform).encode()},
            labels=labels,
            platform=platform,
            created=created,
            history=history,
        )
        for platform in platforms
    ]
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
    descriptor = _write_blob(path, INDEX, _json(index))
    _tag(path, descriptor, tag)
    return str(descriptor["digest"])


def _write_image(
    path: Path,
    *,
    files: dict[str, bytes],
    labels: dict[str, str] | None,
    platform: Platform,
    created: datetime | None,
    history: list[str] | None,
) -> dict[str, Any]:
    """Write layer, config and manifest blobs; return the manifest's descriptor with platform."""
    os, architecture, variant = platform
    layer_tar = _layer_tar(files)
    layer = _write_blob(path, LAYER, gzip.compress(layer_tar, mtime=0))
    timestamp = _rfc3339(created or DEFAULT_CREATED)
    steps = history or [f"COPY {len(files)} file(s) /"]
    config: dict[str, Any] = {
        "created": timestamp,
        "architecture": architecture,
        "os": os,
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        # Only the last step produced the single layer; the others are metadata-only steps.
        "history": [
            {"created": timestamp, "created_by": step}
            | ({} if i == len(steps) - 1 else {"empty_layer": True})
            for i, step in enumerate(steps)
        ],
    }
    if variant:
        config["variant"] = variant
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _write_blob(path, CONFIG, _json(config)),
        "layers": [layer],
    }
    descriptor = _write_blob(path, MANIFEST, _json(manifest))
    descriptor["platform"] = {"architecture": architecture, "os": os} | (
        {"variant": variant} if variant else {}
    )
    return descriptor


def _layer_tar(files: dict[str, bytes]) -> bytes:
    """A reproducible tar: sorted entries, parent directories, mtime 0, root-owned."""
    directories = {
        str(parent)
        for name in files
        for parent in PurePosixPath(name.lstrip("/")).parents
        if str(parent) != "."
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_blob(path: Path, media_type: str, data: bytes) -> dict[str, Any]:
    digest = _digest(data)
    blob = path / "blobs" / "sha256" / digest.removeprefix("sha256:")
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _tag(path: Path, descriptor: dict[str, Any], tag: str) -> None:
    """Point ``tag`` at ``descriptor`` in index.json, replacing an older entry with that tag."""
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = path / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    )
    kept = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"] = [*kept, {**descriptor, "annotations": {REF_NAME: tag}}]
    index_path.write_bytes(_json(index))


def _platform_name(platform: Platform) -> str:
    return "/".join(part for part in platform if part)


def _rfc3339(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
