from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import (
    BLOB_MEDIA_TYPE,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MANIFEST,
    SCHEMA1_SIGNED_MANIFEST,
    ImageDetails,
    Layer,
    ManifestDetails,
    Platform,
    Undescribable,
    describe_manifest,
    parse_rfc3339,
)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Content-addressed store standing in for the registry client's fetch callables."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.failures: dict[str, RegistryError] = {}

    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, media_type: str, document: dict[str, Any]) -> tuple[str, bytes]:
        body = json.dumps(document, indent=3).encode()
        digest = digest_of(body)
        self.manifests[digest] = (media_type, body)
        return digest, body

    def fetch_manifest(self, digest: str) -> tuple[str, bytes]:
        if digest in self.failures:
            raise self.failures[digest]
        if digest not in self.manifests:
            raise RegistryError(f"GET manifests/{digest} -> HTTP 404", 404, "MANIFEST_UNKNOWN")
        return self.manifests[digest]

    def fetch_blob(self, digest: str) -> bytes:
        if digest in self.failures:
            raise self.failures[digest]
        if digest not in self.blobs:
            raise RegistryError(f"GET blobs/{digest} -> HTTP 404", 404, "BLOB_UNKNOWN")
        return self.blobs[digest]

    def describe(self, digest: str, media_type: str | None = None) -> ManifestDetails:
        stored_type, body = self.manifests[digest]
        return describe_manifest(
            digest, media_type or stored_type, body, self.fetch_manifest, self.fetch_blob
        )

    def add_image(
        self,
        manifest_type: str = DOCKER_MANIFEST,
        *,
        architecture: str = "amd64",
        variant: str | None = None,
        created: str = "2024-03-01T10:00:00.123456789Z",
        labels: dict[str, Any] | None = None,
        config: bytes | None = None,
        with_media_type: bool = True,
    ) -> tuple[str, bytes]:
        oci = manifest_type == OCI_MANIFEST
        if config is None:
            platform = {"architecture": architecture, "os": "linux"}
            if variant:
                platform["variant"] = variant
            config = json.dumps(
                {
                    **platform,
                    "created": created,
                    "config": {"Labels": labels if labels is not None else {"team": "a"}},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [
                        {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
                        {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
                        {"comment": "no command"},
                    ],
                }
            ).encode()
        config_digest = self.add_blob(config)
        layer_type = OCI_LAYER if oci else DOCKER_LAYER
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "size": len(config),
                "digest": config_digest,
            },
            "layers": [
                {"mediaType": layer_type, "size": 1000, "digest": "sha256:" + "a" * 64},
                {"mediaType": layer_type, "size": 234, "digest": "sha256:" + "b" * 64},
            ],
        }
        if with_media_type:
            document["mediaType"] = manifest_type
        return self.add_manifest(manifest_type, document)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


def test_constants() -> None:
    assert len(MANIFEST_MEDIA_TYPES) == 6
    assert all(media_type in MANIFEST_ACCEPT for media_type in MANIFEST_MEDIA_TYPES)
    assert BLOB_MEDIA_TYPE not in MANIFEST_MEDIA_TYPES


@pytest.mark.parametrize(
    ("platform", "text"),
    [
        (Platform("linux", "amd64"), "linux/amd64"),
        (Platform("linux", "arm64", "v8"), "linux/arm64/v8"),
    ],
)
def test_platform_str(platform: Platform, text: str) -> None:
    assert str(platform) == text


def test_docker_v2_image(registry: FakeRegistry) -> None:
    digest, _ = registry.add_image(DOCKER_MANIFEST)
    details = registry.describe(digest)
    (image,) = details.images
    config_digest, config = next(iter(registry.blobs.items()))
    assert image == ImageDetails(
        digest=digest,
        media_type=DOCKER_MANIFEST,
        platform=Platform("linux", "amd64"),
        size=len(config) + 1234,
        created=datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
        labels={"team": "a"},
        layers=[
            Layer("sha256:" + "a" * 64, 1000, DOCKER_LAYER),
            Layer("sha256:" + "b" * 64, 234, DOCKER_LAYER),
        ],
        history=["/bin/sh -c #(nop) ADD file:abc in / ", '/bin/sh -c #(nop)  CMD ["sh"]', ""],
        config_digest=config_digest,
    )
    assert details == ManifestDetails(
        digest=digest,
        media_type=DOCKER_MANIFEST,
        size=image.size,
        platforms=[Platform("linux", "amd64")],
        images=[image],
        created=image.created,
        labels={"team": "a"},
        skipped=[],
    )


@pytest.mark.parametrize("with_media_type", [True, False])
def test_oci_image(registry: FakeRegistry, with_media_type: bool) -> None:
    digest, _ = registry.add_image(OCI_MANIFEST, with_media_type=with_media_type)
    details = registry.describe(digest)
    assert details.media_type == OCI_MANIFEST
    assert details.skipped == []
    assert details.images[0].layers[0].media_type == OCI_LAYER
    assert details.platforms == [Platform("linux", "amd64")]


def test_oci_index_with_attestation(registry: FakeRegistry) -> None:
    amd64, amd64_body = registry.add_image(OCI_MANIFEST, created="2024-01-01T00:00:00Z")
    arm64, arm64_body = registry.add_image(
        OCI_MANIFEST,
        architecture="arm64",
        variant="v8",
        created="2024-02-01T00:00:00Z",
        labels={"team": "b"},
    )
    attestation, _ = registry.add_manifest(OCI_MANIFEST, {"schemaVersion": 2})
    index, _ = registry.add_manifest(
        OCI_INDEX,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": amd64,
                    "size": len(amd64_body),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": arm64,
                    "size": len(arm64_body),
                    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": attestation,
                    "size": 100,
                    "annotations": {
                        "vnd.docker.reference.digest": amd64,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                    "platform": {"architecture": "unknown", "os": "unknown"},
                },
            ],
        },
    )
    details = registry.describe(index)
    assert details.media_type == OCI_INDEX
    assert [str(p) for p in details.platforms] == ["linux/amd64", "linux/arm64/v8"]
    assert [image.digest for image in details.images] == [amd64, arm64]
    assert details.size == max(image.size for image in details.images)
    assert details.created == datetime(2024, 2, 1, tzinfo=UTC)
    assert details.labels == {"team": "a"}
    assert details.skipped == [f"attestation manifest {attestation} skipped"]


def docker_list(*children: tuple[str, bytes, dict[str, str]]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": d, "size": len(b), "platform": p}
            for d, b, p in children
        ],
    }


def test_docker_manifest_list(registry: FakeRegistry) -> None:
    amd64, amd64_body = registry.add_image(DOCKER_MANIFEST)
    arm, arm_body = registry.add_image(DOCKER_MANIFEST, architecture="arm", variant="v7")
    index, _ = registry.add_manifest(
        DOCKER_MANIFEST_LIST,
        docker_list(
            (amd64, amd64_body, {"architecture": "amd64", "os": "linux"}),
            (arm, arm_body, {"architecture": "arm", "os": "linux", "variant": "v7"}),
        ),
    )
    details = registry.describe(index)
    assert [str(p) for p in details.platforms] == ["linux/amd64", "linux/arm/v7"]
    assert details.skipped == []
    assert all(image.media_type == DOCKER_MANIFEST for image in details.images)


def test_index_child_not_found_fails_the_index(registry: FakeRegistry) -> None:
    amd64, amd64_body = registry.add_image(DOCKER_MANIFEST)
    missing = "sha256:" + "9" * 64
    index, _ = registry.add_manifest(
        DOCKER_MANIFEST_LIST,
        docker_list(
            (missing, b"", {"architecture": "s390x", "os": "linux"}),
            (amd64, amd64_body, {"architecture": "amd64", "os": "linux"}),
        ),
    )
    with pytest.raises(Undescribable, match=f"child {missing} is not in the registry"):
        registry.describe(index)


def test_index_child_unavailable_propagates(registry: FakeRegistry) -> None:
    amd64, amd64_body = registry.add_image(DOCKER_MANIFEST)
    registry.failures[amd64] = RegistryUnavailable("GET ... -> HTTP 503", 503)
    index, _ = registry.add_manifest(
        DOCKER_MANIFEST_LIST,
        docker_list((amd64, amd64_body, {"architecture": "amd64", "os": "linux"})),
    )
    with pytest.raises(RegistryUnavailable):
        registry.describe(index)


def test_config_unavailable_propagates(registry: FakeRegistry) -> None:
    digest, _ = registry.add_image(DOCKER_MANIFEST)
    config_digest = next(iter(registry.blobs))
    registry.failures[config_digest] = RegistryUnavailable("connection refused")
    with pytest.raises(RegistryUnavailable):
        registry.describe(digest)


def test_config_not_found_fails(registry: FakeRegistry) -> None:
    digest, _ = registry.add_image(DOCKER_MANIFEST)
    registry.blobs.clear()
    with pytest.raises(Undescribable, match=r"config sha256:\w+ is not in the registry"):
        registry.describe(digest)


def test_config_refused_otherwise_fails_without_the_registry_address(
    registry: FakeRegistry,
) -> None:
    digest, _ = registry.add_image(DOCKER_MANIFEST)
    config_digest = next(iter(registry.blobs))
    registry.failures[config_digest] = RegistryError(
        f"GET http://registry.internal:5000/v2/a/blobs/{config_digest} -> HTTP 400 Bad Request", 400
    )
    with pytest.raises(Undescribable) as raised:
        registry.describe(digest)
    assert str(raised.value) == f"config {config_digest} could not be fetched: HTTP 400 Bad Request"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_propagates(registry: FakeRegistry, status: int) -> None:
    """The registry not trusting our tokens is a setting to fix, not the image's fault."""
    digest, _ = registry.add_image(DOCKER_MANIFEST)
    registry.failures[next(iter(registry.blobs))] = RegistryError("denied", status)
    with pytest.raises(RegistryError) as raised:
        registry.describe(digest)
    assert not isinstance(raised.value, Undescribable) and raised.value.status == status


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b"\xff\xfe", "is not valid JSON"),
    ],
)
def test_malformed_config(registry: FakeRegistry, config: bytes, fragment: str) -> None:
    digest, _ = registry.add_image(DOCKER_MANIFEST, config=config)
    with pytest.raises(Undescribable, match=f"config {digest_of(config)} {fragment}"):
        registry.describe(digest)


def test_unset_config_fields(registry: FakeRegistry) -> None:
    """Missing fields and Go's zero time are "unset", not invalid."""
    config = json.dumps({"os": "linux", "created": "0001-01-01T00:00:00Z", "config": {}}).encode()
    digest, _ = registry.add_image(DOCKER_MANIFEST, config=config)
    details = registry.describe(digest)
    (image,) = details.images
    assert (image.platform, image.created, image.history, image.labels) == (None, None, [], {})
    assert details.skipped == []


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ({"config": "nope", "layers": []}, "config is not a descriptor"),
        ({"config": {"digest": "sha256:x", "size": 1}, "layers": []}, "has no valid digest"),
        ({"layers": [7]}, "layer #0 is not a descriptor"),
        ({"layers": {"a": 1}}, "layers is not a list"),
    ],
)
def test_malformed_manifest_pieces(
    registry: FakeRegistry, manifest: dict[str, Any], fragment: str
) -> None:
    config = {"mediaType": "application/x-artifact", "size": 2, "digest": "sha256:" + "e" * 64}
    digest, _ = registry.add_manifest(
        DOCKER_MANIFEST, {"schemaVersion": 2, "config": config, **manifest}
    )
    with pytest.raises(Undescribable, match=fragment):
        registry.describe(digest)


def test_artifact_config_is_not_fetched(registry: FakeRegistry) -> None:
    helm_config = "application/vnd.cncf.helm.config.v1+json"
    digest, _ = registry.add_manifest(
        OCI_MANIFEST,
        {
            "schemaVersion": 2,
            "config": {"mediaType": helm_config, "size": 2, "digest": "sha256:" + "e" * 64},
            "layers": [],
        },
    )
    details = registry.describe(digest)
    assert details.images[0].size == 2
    assert details.skipped == [f"image {digest}: config media type {helm_config} not interpreted"]


def schema1(history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "name": "alice/old",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:" + "2" * 64}, {"blobSum": "sha256:" + "1" * 64}],
        "history": history
        if history is not None
        else [{"v1Compatibility": json.dumps({"os": "linux", "created": "2015-01-01T00:00:00Z"})}],
    }


@pytest.mark.parametrize(
    "media_type", [SCHEMA1_SIGNED_MANIFEST, SCHEMA1_MANIFEST, "application/json"]
)
def test_schema1(registry: FakeRegistry, media_type: str) -> None:
    digest, _ = registry.add_manifest(media_type, schema1())
    details = registry.describe(digest)
    (image,) = details.images
    assert image.platform == Platform("linux", "amd64")
    assert image.created == datetime(2015, 1, 1, tzinfo=UTC)
    assert [layer.digest[-1] for layer in image.layers] == ["1", "2"]
    assert image.config_digest is None
    assert details.skipped == ["schema1 manifest: no config"]


def test_schema1_with_broken_history(registry: FakeRegistry) -> None:
    digest, _ = registry.add_manifest(SCHEMA1_SIGNED_MANIFEST, schema1([{"v1Compatibility": "{"}]))
    with pytest.raises(Undescribable, match="v1Compatibility is not valid JSON"):
        registry.describe(digest)


def test_unknown_media_type(registry: FakeRegistry) -> None:
    digest, body = registry.add_manifest("application/vnd.example.thing+json", {"x": 1})
    details = registry.describe(digest)
    assert details.images == []
    assert details.size == len(body)
    assert details.media_type == "application/vnd.example.thing+json"
    assert details.skipped == [
        "unknown media type application/vnd.example.thing+json: not interpreted"
    ]


def test_unknown_media_type_argument_with_known_body(registry: FakeRegistry) -> None:
    digest, _ = registry.add_image(OCI_MANIFEST)
    assert registry.describe(digest, "application/json").media_type == OCI_MANIFEST


def test_digest_mismatch_fails(registry: FakeRegistry) -> None:
    _, body = registry.add_image(DOCKER_MANIFEST)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(Undescribable) as raised:
        describe_manifest(
            wrong, DOCKER_MANIFEST, body, registry.fetch_manifest, registry.fetch_blob
        )
    assert str(raised.value) == f"manifest: content hashes to {digest_of(body)}, not {wrong}"


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b"\xff", b"[" * 100_000, b'{"manifests": 3}', b'{"manifests": [1]}'],
)
@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_INDEX, SCHEMA1_SIGNED_MANIFEST, ""])
def test_malformed_manifests_fail_or_are_noted(
    registry: FakeRegistry, body: bytes, media_type: str
) -> None:
    """Nothing but Undescribable, with a reason; or, for a type not interpreted, a note."""
    try:
        details = describe_manifest(
            digest_of(body), media_type, body, registry.fetch_manifest, registry.fetch_blob
        )
    except Undescribable as error:
        assert str(error)
    else:
        assert details.skipped == ["unknown media type (none): not interpreted"]
        assert details.size == len(body)


def test_nested_index_and_unknown_child_types(registry: FakeRegistry) -> None:
    index, _ = registry.add_manifest(
        OCI_INDEX,
        {
            "manifests": [
                {"mediaType": OCI_INDEX, "digest": "sha256:" + "3" * 64, "size": 9},
                {"mediaType": "application/x-other", "digest": "sha256:" + "4" * 64, "size": 9},
            ]
        },
    )
    assert registry.describe(index).skipped == [
        f"nested index {'sha256:' + '3' * 64} not followed",
        f"unknown media type application/x-other for child {'sha256:' + '4' * 64}",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5+01:30", datetime(2024, 5, 1, 10, 30, 0, 500000, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00+01:00", None),
        ("2024-05-01", None),
        ("2024-02-30T00:00:00Z", None),
        ("2024-05-01T12:00:00", None),
        (20240501, None),
        (None, None),
    ],
)
def test_parse_rfc3339(text: object, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected
