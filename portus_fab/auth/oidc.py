"""Who an OpenID Connect sign-in says a person is: the standard claims of the ID token and of the
userinfo endpoint, made into the user information FAB's `auth_user_oauth` finds or creates a
user from. Pure: the claims come in as mappings (views/oidc.py fetches them).

The username is the `preferred_username` claim, else the `email` (what people recognise and type
after `docker login -u`, and FAB's own fallback), else the `sub` (opaque, often a UUID, but every
provider sends it and it never changes), each only if it is a safe username: no `:` (HTTP Basic
ends the name at the first one), no `+` (a robot account's form), no spaces or control
characters, not the name portus_fab uses for itself. An email the provider says is not verified
is never used: anyone could claim someone else's address.

The groups come from one claim (PORTUS_OIDC_GROUPS_CLAIM); they become FAB's `role_keys`, which
AUTH_ROLES_MAPPING maps to roles and PORTUS_GROUP_TEAMS to teams.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any, TypedDict

from flask_appbuilder.const import AUTH_DB, AUTH_LDAP
from flask_appbuilder.security.sqla.models import User

from portus_fab.access.policy import INTERNAL_IDENTITY
from portus_fab.errors import Unauthenticated

Claims = Mapping[str, Any]

PASSWORD_AUTH_TYPES = frozenset({AUTH_DB, AUTH_LDAP})

USERNAME_CLAIMS = ("preferred_username", "email", "sub")
# Letters and digits of any script, then also `.`, `_`, `@` and `-`: an email address fits, and
# a command line needs no quoting.
USERNAME_RE = re.compile(r"[^\W_][\w.@-]*")

# FAB's ab_user columns: a longer value would fail the insert.
_COLUMNS = User.__table__.c
USERNAME_MAX = _COLUMNS.username.type.length
NAME_MAX = _COLUMNS.first_name.type.length
EMAIL_MAX = _COLUMNS.email.type.length


class OidcUserInfo(TypedDict):
    """The keys FAB's `auth_user_oauth` reads."""

    username: str
    email: str
    first_name: str
    last_name: str
    role_keys: list[str]


def merged_claims(id_token: Claims | None, userinfo: Claims | None) -> dict[str, Any]:
    """The ID token's claims, completed by the userinfo endpoint's (which some providers alone
    fill with names or groups). OpenID Connect Core 5.3.2: a userinfo answer for another
    subject than the ID token's must not be used."""
    if not id_token and not userinfo:
        raise Unauthenticated("the provider sent neither an ID token nor userinfo")
    if id_token and userinfo and userinfo.get("sub") != id_token.get("sub"):
        raise Unauthenticated("the userinfo endpoint answered for another subject")
    return {**(id_token or {}), **(userinfo or {})}


def user_info(claims: Claims, groups_claim: str) -> OidcUserInfo:
    """FAB's user information from the claims; Unauthenticated when no claim gives a safe
    username (FAB then refuses the sign-in)."""
    username = username_from(claims)
    if username is None:
        raise Unauthenticated(
            "the provider sent no usable preferred_username, verified email or sub claim"
        )
    email = _text(claims.get("email")) if _email_trusted(claims) else ""
    return {
        "username": username,
        "email": email if len(email) <= EMAIL_MAX else "",
        "first_name": (_text(claims.get("given_name")) or _text(claims.get("name")))[:NAME_MAX],
        "last_name": _text(claims.get("family_name"))[:NAME_MAX],
        "role_keys": groups_from(claims, groups_claim),
    }


def username_from(claims: Claims) -> str | None:
    """The first of preferred_username, verified email and sub that is a safe username."""
    for claim in USERNAME_CLAIMS:
        if claim == "email" and not _email_trusted(claims):
            continue
        candidate = _text(claims.get(claim))
        if is_safe_username(candidate):
            return candidate
    return None


def is_safe_username(name: str) -> bool:
    return (
        0 < len(name) <= USERNAME_MAX
        and USERNAME_RE.fullmatch(name) is not None
        and name.casefold() != INTERNAL_IDENTITY
    )


def groups_from(claims: Claims, groups_claim: str) -> list[str]:
    """The groups claim as a list of names: a list of strings, or one string. Anything else in
    it gives no group: a malformed entry may take rights away, never give them."""
    value = claims.get(groups_claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    return [group for group in value if isinstance(group, str) and group]


def has_registry_password(auth_type: int) -> bool:
    """Whether users of this sign-in know a password `docker login` takes: their own (AUTH_DB)
    or their directory's (AUTH_LDAP). Users signed in by a provider (OAuth, SAML, a proxy's
    REMOTE_USER) have none: FAB gave them a random one they never see."""
    return auth_type in PASSWORD_AUTH_TYPES


def docker_login_command(registry_host: str, username: str) -> str:
    """The command that logs a client in with a personal access token pasted on stdin, in the
    order the access token's own page shows it."""
    return f"docker login -u {shlex.quote(username)} --password-stdin {shlex.quote(registry_host)}"


def _email_trusted(claims: Claims) -> bool:
    # Some providers (Amazon Cognito) send the boolean as a string.
    return claims.get("email_verified") not in (False, "false")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
