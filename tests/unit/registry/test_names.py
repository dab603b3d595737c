from __future__ import annotations

import pytest

from portus_fab.registry.names import (
    DIGEST_RE,
    REPOSITORY_NAME_RE,
    TAG_RE,
    namespace_of,
    slugify_namespace,
    validate_digest,
    validate_repository_name,
    validate_tag,
)

SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name",
    ["a", "alice/app", "library/ubuntu", "a.b_c__d---e/f0", "x/" * 100 + "y", "0/1/2/3"],
)
def test_valid_repository_names(name: str) -> None:
    assert validate_repository_name(name) is None
    assert REPOSITORY_NAME_RE.fullmatch(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("Alice/app", "'Alice'"),
        ("alice//app", "''"),
        ("/app", "''"),
        ("alice/app/", "''"),
        ("a..b", "'a..b'"),
        ("a___b", "'a___b'"),
        ("-a", "'-a'"),
        ("a-", "'a-'"),
        ("a b", "'a b'"),
        ("ä", "'ä'"),
        ("alice/app:tag", "'app:tag'"),
        ("a" * 256, "256 characters"),
        ("alice/app\n", "'app\\n'"),
    ],
)
def test_invalid_repository_names(name: str, fragment: str) -> None:
    error = validate_repository_name(name)
    assert error is not None
    assert fragment in error


def test_repository_name_of_wrong_type() -> None:
    assert validate_repository_name(["a"]) == "repository name must be a string, not list"


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_x", "A" * 128, "1.0-rc_1"])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) is None
    assert TAG_RE.fullmatch(tag)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "A" * 129, "a/b", "a:b", "tëst", "x\n", 3])
def test_invalid_tags(tag: object) -> None:
    assert validate_tag(tag) is not None


@pytest.mark.parametrize(
    "digest", [SHA, "sha512:" + "0" * 128, "multihash+base58:" + "a" * 40, "sha384:" + "f" * 96]
)
def test_valid_digests(digest: str) -> None:
    assert validate_digest(digest) is None
    assert DIGEST_RE.fullmatch(digest)


@pytest.mark.parametrize(
    ("digest", "fragment"),
    [
        ("sha256:" + "ab" * 31, "64 hex digits"),
        ("sha256:" + "AB" * 32, "not of the form"),
        ("ab" * 32, "not of the form"),
        ("sha256:" + "g" * 64, "not of the form"),
        (":" + "a" * 64, "not of the form"),
        ("latest", "not of the form"),
        (None, "not NoneType"),
    ],
)
def test_invalid_digests(digest: object, fragment: str) -> None:
    error = validate_digest(digest)
    assert error is not None
    assert fragment in error


@pytest.mark.parametrize(
    ("repository", "namespace"),
    [("alice/app", "alice"), ("team/sub/app", "team"), ("ubuntu", None)],
)
def test_namespace_of(repository: str, namespace: str | None) -> None:
    assert namespace_of(repository) == namespace


@pytest.mark.parametrize(
    ("username", "slug"),
    [
        ("alice", "alice"),
        ("Alice.Smith@corp", "alice.smith-corp"),
        ("UPPER", "upper"),
        ("__x__", "x"),
        ("", "user"),
        ("日本", "user"),
        ("---", "user"),
        ("José Müller", "jose-muller"),
        ("a__b", "a__b"),
        ("a___b", "a-b"),
        ("a._b", "a-b"),
        ("a - b", "a-b"),
        ("a--b", "a-b"),
        ("DOMAIN\\bob", "domain-bob"),
        ("x" * 300, "x" * 200),
        ("x" * 199 + ".y", "x" * 199),
    ],
)
def test_slugify_namespace(username: str, slug: str) -> None:
    assert slugify_namespace(username) == slug
    assert validate_repository_name(slug) is None
