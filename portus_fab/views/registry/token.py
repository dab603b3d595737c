"""`GET /v2/token`: the registry's token authentication endpoint."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from portus_fab.auth.access import resolve_access
from portus_fab.auth.authenticate import AuthenticationRefused, authenticate
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


@token_blueprint.after_request
def _never_stored(response: Response) -> Response:
    # A token is a bearer credential (RFC 6749, 5.1): no browser, proxy or client cache may keep
    # one. Error answers too, so no cache ever holds an answer meant for other credentials.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


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
    try:
        principal = authenticate(
            core.authentication,
            core.session,
            request.headers.get("Authorization"),
            account=request.args.get("account"),
            epoch=epoch,
        )
    except AuthenticationRefused as refusal:
        log.info("token refused for %r: %s", refusal.claimed, refusal.reason)
        raise TokenError(401, "UNAUTHORIZED", refusal.reason) from None
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
