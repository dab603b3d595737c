"""The secret format every credential kind shares: prefix, randomness, checksum, keyed hash."""

from __future__ import annotations

import pytest

from portus_fab.auth.secrets import (
    ALPHABET,
    LENGTH,
    PATTERN,
    RANDOM_LENGTH,
    SecretHasher,
    SecretKind,
    generate,
    kind_of,
    looks_like,
)


@pytest.mark.parametrize("kind", list(SecretKind))
def test_a_secret_carries_its_kind_prefix_and_a_valid_checksum(kind: SecretKind) -> None:
    secret = generate(kind)
    assert secret.startswith(kind.prefix)
    assert len(secret) == LENGTH
    assert all(char in ALPHABET for char in secret[5:])
    assert kind_of(secret) is kind
    assert looks_like(secret, kind)
    assert PATTERN.fullmatch(secret)
    others = [other for other in SecretKind if other is not kind]
    assert not any(looks_like(secret, other) for other in others)


def test_enough_randomness_no_two_alike() -> None:
    assert 62**RANDOM_LENGTH > 2**160
    secrets = {generate(SecretKind.ACCESS_TOKEN) for _ in range(2000)}
    assert len(secrets) == 2000
    # Every position varies: the randomness is spread over the whole random part.
    for position in range(5, 5 + RANDOM_LENGTH):
        assert len({secret[position] for secret in secrets}) > 20


@pytest.mark.parametrize("position", range(5, LENGTH))
def test_any_single_character_changed_fails_the_checksum(position: int) -> None:
    secret = generate(SecretKind.ACCESS_TOKEN)
    replacement = "A" if secret[position] != "A" else "B"
    mistyped = secret[:position] + replacement + secret[position + 1 :]
    assert kind_of(mistyped) is None


def test_the_prefix_is_covered_by_the_checksum() -> None:
    secret = generate(SecretKind.ACCESS_TOKEN)
    assert kind_of(SecretKind.ROBOT.prefix + secret[5:]) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hunter2",
        "pfat_",
        "pfat_" + "a" * (LENGTH - 5),  # right shape, wrong checksum
        "pfat_" + "a" * (LENGTH - 4),  # too long
        "pfxx_" + "a" * (LENGTH - 5),  # unknown prefix
        "pfat_" + "é" * (LENGTH - 5),  # not ASCII
        "pfat_" + "-" * (LENGTH - 5),  # outside base62
    ],
)
def test_anything_else_is_no_secret(text: str) -> None:
    assert kind_of(text) is None
    assert not looks_like(text, SecretKind.ACCESS_TOKEN)


def test_a_scanner_finds_a_secret_in_text() -> None:
    secret = generate(SecretKind.ROBOT)
    found = PATTERN.findall(f'export REGISTRY_PASSWORD="{secret}" # ci')
    assert found == [secret]


def test_the_hash_is_keyed_stable_and_compared_in_constant_time() -> None:
    secret = generate(SecretKind.ACCESS_TOKEN)
    one, other = SecretHasher(b"k" * 32), SecretHasher(b"j" * 32)
    stored = one.hash(secret)
    assert stored == one.hash(secret)
    assert len(stored) == 64 and secret not in stored
    assert stored != other.hash(secret)
    assert one.matches(secret, stored)
    assert not other.matches(secret, stored)
    assert not one.matches(generate(SecretKind.ACCESS_TOKEN), stored)


def test_a_short_hash_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecretHasher(b"short")
