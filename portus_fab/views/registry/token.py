"""`GET /v2/token`: the registry's token authentication endpoint."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from portus_fab.auth.access import resolve_access
from portus_fab.auth.authenticate import AuthenticationRefused, authenticate
from portus_fab.auth.scopes import ScopeError, parse_scopes
from portus_fab.core import portus
from portus_fab.errors import Forbidden, Invalid, NotFound, PortusError, Unauthenticated
from portus_fab.models.epoch import current_epoch

log = logging.getLogger(__name__)

token_blueprint = Blueprint("portus_token", __name__)


class WrongService(Invalid):
    """A token asked for another registry than the one this service signs for."""


# portus_fab.errors as this protocol answers them: the status and the code docker, skopeo and
# containerd show their users beside the message. The most specific class listed wins.
ANSWERS: dict[type[PortusError], tuple[int, str]] = {
    Unauthenticated: (401, "UNAUTHORIZED"),
    ScopeError: (400, "INVALID_SCOPE"),
    WrongService: (400, "INVALID_SERVICE"),
    Invalid: (400, "INVALID_REQUEST"),
    Forbidden: (403, "DENIED"),
    NotFound: (404, "NOT_FOUND"),
    PortusError: (400, "INVALID_REQUEST"),
}


@token_blueprint.errorhandler(PortusError)
def _token_error(error: PortusError) -> tuple[Response, int, dict[str, str]]:
    status, code = next(ANSWERS[cls] for cls in type(error).__mro__ if cls in ANSWERS)
    message = str(error)
    body = {"errors": [{"code": code, "message": message}], "details": message}
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="portus_fab"'
    return jsonify(body), status, headers


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
        raise WrongService(
            f"this token service serves the registry {expected!r}, not {service!r}: the "
            f"registry's auth.token.service must equal PORTUS_REGISTRY_SERVICE ({expected!r})",
        )
    scopes = parse_scopes(request.args.getlist("scope"))
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
        raise
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
