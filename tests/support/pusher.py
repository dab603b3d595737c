"""Push blobs and manifests to a registry over raw HTTP, as a hostile client would: skopeo
checks sizes and digests before it sends anything, so content that only the registry's own
checks judge (a layer claiming 2^62 bytes, a config that is not JSON) goes this way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

TokenFor = Callable[[str], str]  # repository -> a bearer token with pull and push on it

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TIMEOUT = 30


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def canonical(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class RawPusher:
    def __init__(self, registry_url: str, token_for: TokenFor) -> None:
        self.base = registry_url.rstrip("/")
        self._token_for = token_for
        self._session = requests.Session()

    def _headers(self, repository: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token_for(repository)}", **extra}

    def blob(self, repository: str, data: bytes, media_type: str = OCI_LAYER) -> dict[str, Any]:
        """Upload `data` (monolithic) and return its descriptor."""
        digest = digest_of(data)
        started = self._session.post(
            f"{self.base}/v2/{repository}/blobs/uploads/",
            headers=self._headers(repository),
            timeout=TIMEOUT,
        )
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        location = location if "://" in location else self.base + location
        done = self._session.put(
            location,
            params={"digest": digest},
            data=data,
            headers=self._headers(repository, **{"Content-Type": "application/octet-stream"}),
            timeout=TIMEOUT,
        )
        assert done.status_code == 201, done.text
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(
        self, repository: str, reference: str, document: dict[str, Any], media_type: str
    ) -> str:
        """PUT `document` as the manifest `reference`; return its digest."""
        body = canonical(document)
        answer = self._session.put(
            f"{self.base}/v2/{repository}/manifests/{reference}",
            data=body,
            headers=self._headers(repository, **{"Content-Type": media_type}),
            timeout=TIMEOUT,
        )
        assert answer.status_code == 201, answer.text
        return digest_of(body)

    def image(
        self,
        repository: str,
        reference: str,
        config: bytes,
        layers: list[dict[str, Any]] | None = None,
    ) -> str:
        """An OCI image with `config` (uploaded as is) and `layers` (one real small layer by
        default); returns the manifest digest."""
        descriptor = self.blob(repository, config, OCI_CONFIG)
        if layers is None:
            layers = [self.blob(repository, b"layer of " + repository.encode())]
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor,
            "layers": layers,
        }
        return self.manifest(repository, reference, document, OCI_MANIFEST)

    def layout(self, repository: str, reference: str, layout: Path) -> str:
        """Push the image the OCI layout at `layout` tags as `reference`, blobs and all."""
        index = json.loads((layout / "index.json").read_bytes())
        (entry,) = [
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == reference
        ]
        manifest = json.loads(_blob(layout, entry["digest"]))
        for descriptor in [manifest["config"], *manifest["layers"]]:
            self.blob(repository, _blob(layout, descriptor["digest"]), descriptor["mediaType"])
        answer = self._session.put(
            f"{self.base}/v2/{repository}/manifests/{reference}",
            data=_blob(layout, entry["digest"]),
            headers=self._headers(repository, **{"Content-Type": manifest["mediaType"]}),
            timeout=TIMEOUT,
        )
        assert answer.status_code == 201, answer.text
        return str(entry["digest"])


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
