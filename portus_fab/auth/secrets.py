"""The one format of every secret the project hands out, and how it is stored.

A secret reads `pfat_` + 30 base62 characters of randomness + 6 base62 characters of CRC32:
- the prefix names its kind, so `authenticate` knows from the password alone which check to run
  (no password hash is tried for a token, no token lookup for a password), and a secret scanner
  (GitHub's, gitleaks, trufflehog) can match it with one regular expression;
- 30 base62 characters are 178 bits, so no one guesses one and a fast keyed hash (HMAC-SHA256)
  is the right way to store it: a slow password hash (scrypt, tens of ms) protects low-entropy
  passwords and would only make every pull slower here;
- the checksum (CRC32 of the prefix and the random part, as GitHub's `ghp_` tokens carry) lets a
  scanner tell a real secret from a look-alike offline, and lets us refuse a mistyped one
  without asking the database.

The hash key is its own persistent secret in the data dir (PORTUS_CREDENTIAL_HASH_KEY), not the
Flask SECRET_KEY: rotating the session secret signs everyone out, and must not also invalidate
every stored token. Never log a secret; log `SecretKind` or the token's name instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from enum import Enum

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 30  # 62**30 > 2**178
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
LENGTH = 5 + RANDOM_LENGTH + CHECKSUM_LENGTH  # `pfxx_` + body


class SecretKind(Enum):
    """Each kind's prefix, without the underscore. Four letters, `pf` for portus_fab, so they do
    not collide with other products' prefixes (GitHub's gh*_, GitLab's glpat-, Slack's xox*)."""

    ACCESS_TOKEN = "pfat"
    ROBOT = "pfrb"
    REFRESH_TOKEN = "pfrt"

    @property
    def prefix(self) -> str:
        return f"{self.value}_"


_KINDS = {kind.prefix: kind for kind in SecretKind}
# What a scanner matches (documented in the README's Security section).
_BODY = RANDOM_LENGTH + CHECKSUM_LENGTH
PATTERN = re.compile(rf"\b(?:pfat|pfrb|pfrt)_[0-9A-Za-z]{{{_BODY}}}\b")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    if number:
        raise ValueError("number does not fit the width")
    return "".join(reversed(digits))


def _checksum(prefix: str, random_part: str) -> str:
    return _base62(zlib.crc32((prefix + random_part).encode("ascii")), CHECKSUM_LENGTH)


def generate(kind: SecretKind) -> str:
    """A new secret of `kind`. Show it once; store only `SecretHasher.hash` of it."""
    random_part = _base62(secrets.randbelow(62**RANDOM_LENGTH), RANDOM_LENGTH)
    return kind.prefix + random_part + _checksum(kind.prefix, random_part)


def kind_of(secret: str) -> SecretKind | None:
    """The kind a secret's shape and checksum say it is, or None for anything else (a password).

    Cheap and offline: a password that merely starts with `pfat_` and is not a whole, valid
    secret is a password, and is checked as one.
    """
    if len(secret) != LENGTH or not secret.isascii():
        return None
    kind = _KINDS.get(secret[:5])
    if kind is None:
        return None
    body = secret[5:]
    if any(char not in ALPHABET for char in body):
        return None
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    if not hmac.compare_digest(checksum, _checksum(kind.prefix, random_part)):
        return None
    return kind


def looks_like(secret: str, kind: SecretKind) -> bool:
    """Whether `secret` is a well-formed secret of `kind`, checksum included."""
    return kind_of(secret) is kind


class SecretHasher:
    """HMAC-SHA256 under the credential hash key: what is stored, and the constant-time check."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the credential hash key must be at least 32 bytes")
        self._key = key

    def hash(self, secret: str) -> str:
        """64 hex characters; the same secret always gives the same hash, so it is the lookup
        key of a unique index (no scan, no per-row salt: the secret itself is random)."""
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, stored: str) -> bool:
        return hmac.compare_digest(self.hash(secret), stored)
