"""`GET /v2/token`: the registry's token authentication endpoint."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from portus_fab.access.policy import ANONYMOUS, Principal
from portus_fab.auth.access import resolve_access
from portus_fab.auth.credentials import authenticate, same_username
from portus_fab.auth.scopes import ScopeError, parse_scopes
from portus_fab.core import portus
from portus_fab.models.epoch import current_epoch

log = logging.getLogger(__name__)

token_blueprint = Blueprint("portus_token", __name__)


class TokenError(Exception):
    """Answered as the JSON error body docker, skopeo and containerd show their users."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@token_blueprint.errorhandler(TokenError)
def _token_error(error: TokenError) -> tuple[Response, int, dict[str, str]]:
    body = {"errors": [{"code": error.code, "message": error.message}], "details": error.message}
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="portus_fab"'
    return jsonify(body), error.status, headers


def _authenticate(epoch: int) -> Principal:
    header = request.headers.get("Authorization")
    if not header:
        return ANONYMOUS
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None:
        raise TokenError(401, "UNAUTHORIZED", "malformed Authorization header: use HTTP Basic")
    core = portus()
    principal = authenticate(
        core.session,
        core.credentials,
        auth.username,
        auth.password or "",
        epoch=epoch,
        admin_role=core.admin_role,
        fake_hash=current_app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"],
        case_insensitive=current_app.appbuilder.sm.auth_username_ci,
    )
    if principal is None:
        log.info("token refused: bad credentials for %r", auth.username)
        raise TokenError(401, "UNAUTHORIZED", "invalid username or password")
    return principal


@token_blueprint.get("/v2/token")
def token() -> Response:
    core = portus()
    service = request.args.get("service")
    expected = core.settings.registry_service
    if service is not None and service != expected:
        raise TokenError(
            400,
            "INVALID_SERVICE",
            f"this token service serves the registry {expected!r}, not {service!r}: the "
            f"registry's auth.token.service must equal PORTUS_REGISTRY_SERVICE ({expected!r})",
        )
    try:
        scopes = parse_scopes(request.args.getlist("scope"))
    except ScopeError as error:
        raise TokenError(400, "INVALID_SCOPE", str(error)) from None
    epoch = current_epoch(core.engine)
    principal = _authenticate(epoch)
    account = request.args.get("account")
    if account and not same_username(
        account, principal.username, case_insensitive=current_app.appbuilder.sm.auth_username_ci
    ):
        raise TokenError(
            401, "UNAUTHORIZED", f"account {account!r} does not match the credentials given"
        )
    policy = core.policy()
    access = resolve_access(
        lambda who, repository: core.decisions.explain(policy, who, repository, epoch),
        principal,
        scopes,
    )
    for denial in access.denials:
        log.info("token for %s: %s", principal, denial)
    issued = core.issue(principal.username or "", access.entries)
    return jsonify(issued.response())
