"""Registry bearer tokens (JWT) as distribution's token authentication expects them."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from portus_fab.auth.keys import SigningKey

# The registry allows 60 s of clock skew; backdating nbf a little covers our own.
NOT_BEFORE_SECONDS = 5


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: dt.datetime
    access: list[dict[str, Any]]

    def response(self) -> dict[str, Any]:
        """The answer of the GET form (distribution's token.md)."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at.isoformat().replace("+00:00", "Z"),
        }

    def oauth_response(self) -> dict[str, Any]:
        """The answer of the POST form (distribution's oauth.md): `scope` is what was granted,
        which may be less than what was asked."""
        response = self.response()
        del response["token"]
        return {**response, "scope": self.scope}

    @property
    def scope(self) -> str:
        """The granted access as space-separated scopes; a resource granted nothing is left out."""
        return " ".join(
            f"{entry['type']}:{entry['name']}:{','.join(entry['actions'])}"
            for entry in self.access
            if entry["actions"]
        )


def issue_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    access: list[dict[str, Any]],
    ttl: int,
) -> IssuedToken:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    seconds = int(now.timestamp())  # NumericDate: PyJWT would convert datetimes the same way
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,  # a string: registry v2.8 rejects a list
        "exp": seconds + ttl,
        "nbf": seconds - NOT_BEFORE_SECONDS,
        "iat": seconds,
        "jti": secrets.token_urlsafe(18),
        "access": access,
    }
    return IssuedToken(key.sign(claims), ttl, now, access)
