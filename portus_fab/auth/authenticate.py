"""The one way in: credentials from a request in, the `Principal` they prove out, or a refusal.

Every surface that accepts credentials (the token endpoint today, the REST API later) calls
`authenticate`; none parses an Authorization header or checks a password itself. Like quay's
`auth/credentials.py`, it dispatches on the kind of credential, so a new kind (an access token,
a robot) is one more entry in `_CHECKS` and one more case in `credential_kind`, and the rest -
the parsing, the cache, the `account` check, the refusals - stays as it is.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from flask_appbuilder.const import AUTH_DB
from sqlalchemy.orm import Session

from portus_fab.access.policy import ANONYMOUS, Principal, PrincipalKind
from portus_fab.audit.origin import current_address
from portus_fab.auth import refresh
from portus_fab.auth.access_tokens import LastUse, prove
from portus_fab.auth.credentials import (
    CredentialCache,
    check_password,
    load_user,
    principal_for,
    same_username,
)
from portus_fab.auth.directory import DirectoryUnreachable
from portus_fab.auth.directory_sign_in import DirectorySignIn
from portus_fab.auth.lockout import Lockout
from portus_fab.auth.oidc import has_registry_password
from portus_fab.auth.robots import RobotUsage, check_secret, robot_named, robot_principal
from portus_fab.auth.secrets import SecretHasher, SecretKind, kind_of
from portus_fab.errors import Unauthenticated

log = logging.getLogger(__name__)

# gunicorn's default limit_request_field_size: no header a production server passes is longer.
MAX_AUTHORIZATION = 8190
MALFORMED = "malformed Authorization header"
INVALID = "invalid username or password"
# Under a provider's sign-in (OpenID Connect) people have no password a registry client could
# send; every refused password says what to send instead (true of everyone: it reveals no one).
INVALID_WITHOUT_PASSWORDS = (
    f"{INVALID}: people who sign in through the identity provider log in to the registry with "
    "a personal access token (Registry > Access tokens) as the password"
)
# One answer for an unknown, revoked or outdated refresh token: only the audit record says which.
INVALID_REFRESH_TOKEN = (
    "invalid refresh token: it was revoked, or its owner was disabled or changed their "
    "password since; log in again"
)
# Not INVALID: the password may well be right, and the client should try again, not another one.
DIRECTORY_UNREACHABLE = "the directory (LDAP) that checks passwords is unreachable: try again later"


class AuthenticationRefused(Unauthenticated):
    """Credentials that prove no one. `reason` is safe to show the client; `claimed` is the
    name they claimed, cut short, for the log (never the secret)."""

    def __init__(self, reason: str, claimed: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claimed = None if claimed is None else claimed[:100]


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class RefreshCredentials:
    """A refresh token, as the OAuth2 form's `grant_type=refresh_token` carries it."""

    token: str


Credentials = BasicCredentials | RefreshCredentials


@dataclass(frozen=True, slots=True)
class AuthContext:
    """What checking credentials needs besides the request, read once when the app starts
    instead of from FAB's settings on every request."""

    cache: CredentialCache
    admin_role: str
    fake_hash: str  # hashed against when the user does not exist, to spend the same time
    case_insensitive: bool  # usernames compared as FAB's login compares them
    hasher: SecretHasher  # of every stored secret (access tokens, robots)
    last_use: LastUse
    lockout: Lockout  # failed sign-ins counted and locked, shared with the web sign-in
    robot_usage: RobotUsage = field(default_factory=RobotUsage)
    refresh_use: refresh.RefreshTokenUse = field(default_factory=refresh.RefreshTokenUse)
    # AUTH_LDAP: passwords are the directory's (portus_fab.auth.directory_sign_in), not FAB's.
    directory: DirectorySignIn | None = None
    invalid: str = INVALID  # the answer to credentials that prove no one

    @classmethod
    def from_app(
        cls,
        app: Flask,
        cache: CredentialCache,
        hasher: SecretHasher,
        lockout: Lockout,
        directory: DirectorySignIn | None = None,
    ) -> AuthContext:
        """Call after FAB's security manager exists: it sets the fake hash's default."""
        config = app.config
        return cls(
            cache,
            admin_role=config.get("AUTH_ROLE_ADMIN", "Admin"),
            fake_hash=config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"],
            case_insensitive=config.get("AUTH_USERNAME_CI", True),
            hasher=hasher,
            last_use=LastUse(),
            lockout=lockout,
            directory=directory,
            invalid=INVALID
            if has_registry_password(config.get("AUTH_TYPE", AUTH_DB))
            else INVALID_WITHOUT_PASSWORDS,
        )


def parse_authorization(header: str | None) -> BasicCredentials | None:
    """The Basic credentials of an Authorization header (RFC 7617, UTF-8), None when there are
    none. Anything else - another scheme, bad base64, bytes that are not UTF-8, no colon, any
    header no server would pass - is refused here, as a 401 and never as an error.

    WSGI hands headers over as Latin-1 text, so raw bytes arrive as characters up to U+00FF.
    """
    if not header:
        return None
    if len(header) > MAX_AUTHORIZATION:
        raise AuthenticationRefused(f"{MALFORMED}: longer than {MAX_AUTHORIZATION} characters")
    scheme, _, data = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationRefused(f"{MALFORMED}: use HTTP Basic")
    try:
        decoded = base64.b64decode(data.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise AuthenticationRefused(f"{MALFORMED}: the Basic credentials are not base64") from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationRefused(f"{MALFORMED}: the Basic credentials are not UTF-8") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise AuthenticationRefused(f"{MALFORMED}: Basic credentials are username:password")
    return BasicCredentials(username, password)


def credential_kind(credentials: BasicCredentials) -> PrincipalKind:
    """The kind of principal Basic credentials claim to be, from their shape alone.

    As quay does: an access token or a robot's secret by its prefix (and checksum) in the
    password, so no password hash is ever tried for a token nor a token looked up for a password.
    """
    kind = kind_of(credentials.password)
    if kind is SecretKind.ACCESS_TOKEN:
        return PrincipalKind.ACCESS_TOKEN
    if kind is SecretKind.ROBOT:  # its username is `namespace+name`
        return PrincipalKind.ROBOT
    return PrincipalKind.USER


def _password_user(
    context: AuthContext, session: Session, credentials: BasicCredentials
) -> Principal | None:
    if context.directory is not None:
        return _directory_user(context.directory, context, session, credentials)
    return check_password(
        session,
        credentials.username,
        credentials.password,
        admin_role=context.admin_role,
        fake_hash=context.fake_hash,
        case_insensitive=context.case_insensitive,
    )


def _directory_user(
    directory: DirectorySignIn,
    context: AuthContext,
    session: Session,
    credentials: BasicCredentials,
) -> Principal | None:
    """The directory's answer. Unreachable is a refusal of its own, raised before the lockout
    counts anything: no one guessed wrong."""
    try:
        signed_in = directory.token_sign_in(session, credentials.username, credentials.password)
    except DirectoryUnreachable as error:
        log.warning("password of %r not checked: %s", credentials.username[:100], error.detail)
        raise AuthenticationRefused(DIRECTORY_UNREACHABLE, claimed=credentials.username) from None
    if signed_in is None:
        return None
    principal = principal_for(signed_in.user, context.admin_role)
    # The credential cache drops it when the directory's yes stops counting, even if its own
    # lifetime, started later (at an epoch bump), would keep it longer.
    return dataclasses.replace(principal, expires_at=signed_in.proof_until)


def _access_token(
    context: AuthContext, session: Session, credentials: BasicCredentials
) -> Principal | None:
    # The same one indexed read whether the user exists or not, and the same INVALID answer
    # for a wrong secret, an unknown user and a refused token: only the audit record says why.
    proof = prove(
        session,
        context.hasher,
        credentials.username,
        credentials.password,
        admin_role=context.admin_role,
        case_insensitive=context.case_insensitive,
    )
    if proof.refusal is not None:
        context.last_use.refused(session.get_bind(), proof, current_address())
    return proof.principal


def _robot(
    context: AuthContext, session: Session, credentials: BasicCredentials
) -> Principal | None:
    return check_secret(
        session, context.hasher, context.robot_usage, credentials.username, credentials.password
    )


# One check per kind of credential: the principal it proves, or None.
CredentialCheck = Callable[[AuthContext, Session, BasicCredentials], Principal | None]
_CHECKS: dict[PrincipalKind, CredentialCheck] = {
    PrincipalKind.USER: _password_user,
    PrincipalKind.ACCESS_TOKEN: _access_token,
    PrincipalKind.ROBOT: _robot,
}


def _checked(context: AuthContext, session: Session, credentials: BasicCredentials) -> Principal:
    """The slow path of every credential kind, between the lock and the count: a locked pair or
    address is refused before any check (so even the right secret gets nowhere), and every
    failure, whichever its kind or cause (unknown name too), counts towards a lock."""
    engine = session.get_bind()
    attempt = context.lockout.attempt(credentials.username, current_address())
    context.lockout.check(engine, attempt)
    proved = _CHECKS[credential_kind(credentials)](context, session, credentials)
    if proved is None:
        context.lockout.failed(engine, attempt)
        raise AuthenticationRefused(context.invalid, claimed=credentials.username)
    return proved


def _refresh_token_owner(
    context: AuthContext, session: Session, credentials: RefreshCredentials
) -> Principal:
    engine = session.get_bind()
    proof = refresh.prove(session, context.hasher, credentials.token, admin_role=context.admin_role)
    if proof.principal is None or proof.token is None:
        context.refresh_use.refused(engine, proof, current_address())
        raise AuthenticationRefused(INVALID_REFRESH_TOKEN)
    # Only here, on a cache miss: a cached success says nothing of which token proved it, so the
    # last use is as exact as the cache's lifetime (PORTUS_CREDENTIAL_CACHE_TTL).
    context.refresh_use.note(engine, proof.token.id)
    return proof.principal


def _cache_key(context: AuthContext, credentials: Credentials) -> bytes:
    if isinstance(credentials, RefreshCredentials):
        return context.cache.bearer_key(credentials.token)
    return context.cache.key(credentials.username, credentials.password, current_address())


def authenticate(
    context: AuthContext,
    session: Session,
    authorization: str | Credentials | None,
    *,
    account: str | None,
    epoch: int,
) -> Principal:
    """Who the credentials prove: anonymous without any, else whom they prove; `account` (the
    name the client says it acts for) must name that principal. `authorization` is the
    Authorization header as sent, or the credentials the OAuth2 form carried in its body.

    A returning client costs no query: a success is cached under an HMAC of the credentials for
    the policy `epoch`, which must be read before this call (a change committed meanwhile then
    misses next time). Raises AuthenticationRefused with the reason.
    """
    credentials = (
        authorization
        if isinstance(authorization, Credentials)
        else parse_authorization(authorization)
    )
    if credentials is None:
        principal = ANONYMOUS
    else:
        key = _cache_key(context, credentials)
        cached = context.cache.lookup(key, epoch)
        if cached is not None:
            principal = cached
        else:
            proved = (
                _refresh_token_owner(context, session, credentials)
                if isinstance(credentials, RefreshCredentials)
                else _checked(context, session, credentials)
            )
            context.cache.remember(key, proved, epoch)
            principal = proved
    if account and not same_username(
        account, principal.username, case_insensitive=context.case_insensitive
    ):
        raise AuthenticationRefused(
            f"account {account!r} does not match the credentials given", claimed=account
        )
    if principal.token_id is not None:
        context.last_use.note(session.get_bind(), principal.token_id, current_address())
    if principal.robot_id is not None:
        context.robot_usage.used(session, principal.robot_id)
    return principal


def earns_refresh_token(context: AuthContext, principal: Principal) -> bool:
    """Whether the credentials that proved `principal` may be traded for a refresh token: a
    person's own password only (refresh.may_have_refresh_token), and not a directory's. A refresh
    token is never checked against the directory, so a disabled directory account would keep it
    working; the client keeps sending the password instead, checked there again at least every
    PORTUS_CREDENTIAL_CACHE_TTL."""
    return context.directory is None and refresh.may_have_refresh_token(principal)


def principal_named(context: AuthContext, session: Session, username: str) -> Principal | None:
    """The principal of the user named `username` as the token endpoint would build it after a
    password check, disabled or not (for `flask portus explain`), or of the robot
    `namespace+name`; None if there is none."""
    robot = robot_named(session, username)
    if robot is not None:
        return robot_principal(robot)
    user = load_user(session, username, case_insensitive=context.case_insensitive)
    return None if user is None else principal_for(user, context.admin_role)
