"""The bounds of what one digest may store, field by field: each value just inside its bound is
described, each just outside it (or of the wrong type) is refused with a reason naming the
field. Includes what a real registry refuses to store (a size that is a string or a float) but
another registry might serve."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portus_fab.registry.limits import MEDIA_TYPE_MAX
from portus_fab.registry.manifests import (
    MAX_BLOB_SIZE,
    MAX_HISTORY,
    MAX_INDEX_CHILDREN,
    MAX_LABELS,
    MAX_LAYERS,
    MAX_NAME,
    MAX_TEXT,
    MAX_TEXT_TOTAL,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestDetails,
    Undescribable,
)
from tests.unit.registry.test_manifests import OCI_CONFIG, OCI_LAYER, FakeRegistry

LAYER = "sha256:" + "a" * 64


def _describe(manifest: dict[str, Any] | None = None, **config: Any) -> ManifestDetails:
    """Describe an OCI image whose manifest and config get the given fields."""
    registry = FakeRegistry()
    blob = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Labels": {}},
        }
        | config
    ).encode()
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(blob), "digest": registry.add_blob(blob)},
        "layers": [{"mediaType": OCI_LAYER, "size": 1, "digest": LAYER}],
    } | (manifest or {})
    digest, _ = registry.add_manifest(OCI_MANIFEST, document)
    return registry.describe(digest)


def _layers(count: int, size: object = 1, media_type: object = OCI_LAYER) -> dict[str, Any]:
    return {"layers": [{"mediaType": media_type, "size": size, "digest": LAYER}] * count}


def _labels(labels: object) -> dict[str, Any]:
    return {"config": {"Labels": labels}}


ACCEPTED: dict[str, Callable[[], ManifestDetails]] = {
    "largest size": lambda: _describe(_layers(1, MAX_BLOB_SIZE)),
    "zero size": lambda: _describe(_layers(1, 0)),
    "most layers, largest sizes": lambda: _describe(_layers(MAX_LAYERS, MAX_BLOB_SIZE)),
    "no layers": lambda: _describe({"layers": []}),
    "longest layer media type": lambda: _describe(_layers(1, 1, "x" * MEDIA_TYPE_MAX)),
    "most labels": lambda: _describe(**_labels({f"k{n}": "v" for n in range(MAX_LABELS)})),
    "longest label key and value": lambda: _describe(**_labels({"k" * MAX_NAME: "v" * MAX_TEXT})),
    "null labels": lambda: _describe(**_labels(None)),
    "longest history": lambda: _describe(history=[{"created_by": "x"}] * MAX_HISTORY),
    "longest history command": lambda: _describe(history=[{"created_by": "x" * MAX_TEXT}]),
    "history without command": lambda: _describe(history=[{"comment": "no command"}]),
    "created at the epoch": lambda: _describe(created="1970-01-01T00:00:00Z"),
    "created just now": lambda: _describe(
        created=datetime.now(UTC).isoformat().replace("+00:00", "Z")
    ),
    "created unset (Go zero time)": lambda: _describe(created="0001-01-01T00:00:00Z"),
    "created missing": lambda: _describe(created=None),
    "longest platform fields": lambda: _describe(
        os="o" * MAX_NAME, architecture="a" * MAX_NAME, variant="v" * MAX_NAME
    ),
}

REFUSED: dict[str, tuple[Callable[[], ManifestDetails], str]] = {
    "size over the bound": (lambda: _describe(_layers(1, MAX_BLOB_SIZE + 1)), "is outside 0.."),
    "size 2^63": (lambda: _describe(_layers(1, 1 << 63)), "is outside 0.."),
    "negative size": (lambda: _describe(_layers(1, -1)), "size -1 is outside 0.."),
    "size a string": (lambda: _describe(_layers(1, "12")), "size '12' is not an integer"),
    "size a float": (lambda: _describe(_layers(1, 12.5)), "size 12.5 is not an integer"),
    "size a boolean": (lambda: _describe(_layers(1, True)), "size True is not an integer"),
    "size missing": (
        lambda: _describe({"layers": [{"mediaType": OCI_LAYER, "digest": LAYER}]}),
        "size None is not an integer",
    ),
    "config size over the bound": (
        lambda: _describe({"config": {"mediaType": OCI_CONFIG, "size": 1 << 62, "digest": LAYER}}),
        "config: size 4611686018427387904 is outside",
    ),
    "too many layers": (
        lambda: _describe(_layers(MAX_LAYERS + 1)),
        f"has {MAX_LAYERS + 1} entries, more than {MAX_LAYERS}",
    ),
    "layer media type too long": (
        lambda: _describe(_layers(1, 1, "x" * (MEDIA_TYPE_MAX + 1))),
        f"media type is {MEDIA_TYPE_MAX + 1} characters long",
    ),
    "layer media type not a string": (
        lambda: _describe(_layers(1, 1, 7)),
        "media type 7 is not a string",
    ),
    "too many labels": (
        lambda: _describe(**_labels({f"k{n}": "v" for n in range(MAX_LABELS + 1)})),
        f"{MAX_LABELS + 1} labels, more than {MAX_LABELS}",
    ),
    "label key too long": (
        lambda: _describe(**_labels({"k" * (MAX_NAME + 1): "v"})),
        f"label key is {MAX_NAME + 1} characters long",
    ),
    "label value too long": (
        lambda: _describe(**_labels({"big": "v" * (MAX_TEXT + 1)})),
        f"label 'big' is {MAX_TEXT + 1} characters long",
    ),
    "label value not a string": (
        lambda: _describe(**_labels({"n": 2})),
        "label 'n' 2 is not a string",
    ),
    "labels not an object": (lambda: _describe(**_labels(["a"])), "labels are not an object"),
    "too much text in all": (
        lambda: _describe(
            **_labels({f"k{n}": "v" * MAX_TEXT for n in range(MAX_TEXT_TOTAL // MAX_TEXT + 1)})
        ),
        f"more than {MAX_TEXT_TOTAL}",
    ),
    "history too long": (
        lambda: _describe(history=[{"created_by": "x"}] * (MAX_HISTORY + 1)),
        f"history has {MAX_HISTORY + 1} entries",
    ),
    "history command too long": (
        lambda: _describe(history=[{"created_by": "x" * (MAX_TEXT + 1)}]),
        f"history #0 is {MAX_TEXT + 1} characters long",
    ),
    "history not a list": (lambda: _describe(history="RUN x"), "history is not a list"),
    "history entry not an object": (lambda: _describe(history=[1]), "history #0 is not an object"),
    "created before the epoch": (
        lambda: _describe(created="1969-12-31T23:59:59Z"),
        "created 1969-12-31 is outside 1970-01-01..now",
    ),
    "created in two days": (
        lambda: _describe(
            created=(datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
        ),
        "is outside 1970-01-01..now",
    ),
    "created without a zone": (
        lambda: _describe(created="2024-01-01T00:00:00"),
        "is not an RFC 3339 time",
    ),
    "created an impossible day": (
        lambda: _describe(created="2024-02-30T00:00:00Z"),
        "is not an RFC 3339 time",
    ),
    "created a number": (lambda: _describe(created=1e12), "is not an RFC 3339 time"),
    "platform field too long": (
        lambda: _describe(architecture="a" * (MAX_NAME + 1)),
        f"architecture is {MAX_NAME + 1} characters long",
    ),
    "platform field not a string": (
        lambda: _describe(architecture=5),
        "architecture 5 is not a string",
    ),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_within_the_bounds_is_described(case: str) -> None:
    details = ACCEPTED[case]()
    assert details.images and details.skipped == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_beyond_the_bounds_is_refused_with_the_reason(case: str) -> None:
    describe, fragment = REFUSED[case]
    with pytest.raises(Undescribable) as raised:
        describe()
    assert fragment in str(raised.value)
    assert len(str(raised.value)) < 300  # a reason quotes a little of the content, never all


def test_the_largest_description_fits_a_bigint() -> None:
    details = ACCEPTED["most layers, largest sizes"]()
    assert details.size < 2**53 <= 2**63  # exact in JSON readers too


def _index(entries: int, media_type: str = OCI_MANIFEST) -> ManifestDetails:
    registry = FakeRegistry()
    child, body = registry.add_image(OCI_MANIFEST)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": media_type,
                "digest": child,
                "size": len(body),
                "platform": {"os": "linux", "architecture": f"a{n}"},
            }
            for n in range(entries)
        ],
    }
    digest, _ = registry.add_manifest(OCI_INDEX, document)
    return registry.describe(digest)


def test_index_children_bound() -> None:
    assert len(_index(MAX_INDEX_CHILDREN).images) == 1  # the same child, read once
    with pytest.raises(Undescribable, match=f"has {MAX_INDEX_CHILDREN + 1} entries"):
        _index(MAX_INDEX_CHILDREN + 1)


def test_index_child_out_of_bounds_fails_the_index() -> None:
    registry = FakeRegistry()
    good, good_body = registry.add_image(OCI_MANIFEST)
    bad, bad_body = registry.add_manifest(
        OCI_MANIFEST,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/x-artifact", "size": 1, "digest": LAYER},
            "layers": [{"mediaType": OCI_LAYER, "size": -5, "digest": LAYER}],
        },
    )
    index, _ = registry.add_manifest(
        OCI_INDEX,
        {
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": len(b), "platform": p}
                for d, b, p in [
                    (good, good_body, {"os": "linux", "architecture": "amd64"}),
                    (bad, bad_body, {"os": "linux", "architecture": "arm64"}),
                ]
            ],
        },
    )
    with pytest.raises(Undescribable, match=f"image {bad}: layer #0: size -5 is outside"):
        registry.describe(index)


def test_manifest_media_type_bound() -> None:
    registry = FakeRegistry()
    long_type = "application/" + "x" * MEDIA_TYPE_MAX
    digest, _ = registry.add_manifest(long_type, {"schemaVersion": 2})
    with pytest.raises(Undescribable, match="media type is"):
        registry.describe(digest)
