"""`/v2/token`: the registry's token authentication endpoint, in both of its forms.

GET with Basic credentials (distribution's token.md), and POST with a form body, the OAuth2 form
(oauth.md) that containerd and BuildKit try first and the docker daemon uses with the refresh
token `docker login` stored. Both parse the service and the scopes, authenticate and issue in
one place, `_grant`; they differ only in where the credentials come from and in the answer's
fields.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_appbuilder.security.sqla.models import User
from werkzeug.datastructures import MultiDict

from portus_fab.access.policy import Principal
from portus_fab.auth import refresh
from portus_fab.auth.access import resolve_access
from portus_fab.auth.authenticate import (
    AuthenticationRefused,
    BasicCredentials,
    Credentials,
    RefreshCredentials,
    authenticate,
    earns_refresh_token,
)
from portus_fab.auth.scopes import ScopeError, parse_scopes
from portus_fab.auth.tokens import IssuedToken
from portus_fab.core import Portus, portus
from portus_fab.errors import Forbidden, Invalid, NotFound, PortusError, Unauthenticated
from portus_fab.models.epoch import current_epoch
from portus_fab.models.transaction import transaction

log = logging.getLogger(__name__)

token_blueprint = Blueprint("portus_token", __name__)


class WrongService(Invalid):
    """A token asked for another registry than the one this service signs for."""


class UnsupportedGrant(Invalid):
    """A POST whose grant_type is neither `password` nor `refresh_token`."""


# portus_fab.errors as this protocol answers them: the status and the code docker, skopeo and
# containerd show their users beside the message. The most specific class listed wins.
ANSWERS: dict[type[PortusError], tuple[int, str]] = {
    Unauthenticated: (401, "UNAUTHORIZED"),
    ScopeError: (400, "INVALID_SCOPE"),
    WrongService: (400, "INVALID_SERVICE"),
    UnsupportedGrant: (400, "UNSUPPORTED_GRANT_TYPE"),
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
    args = request.args
    offline = args.get("offline_token", "").lower() == "true"
    issued, refresh_token = _grant(
        args.get("service"),
        args.getlist("scope"),
        request.headers.get("Authorization"),
        account=args.get("account"),
        # `docker login` asks with offline_token=true&client_id=docker, and no scope.
        client_id=refresh.check_client_id(args.get("client_id")) if offline else None,
    )
    body = issued.response()
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return _json(body)


@token_blueprint.post("/v2/token")
def oauth_token() -> Response:
    form = request.form
    grant_type = _required(form, "grant_type")
    credentials: Credentials
    if grant_type == "password":
        credentials = BasicCredentials(_required(form, "username"), _required(form, "password"))
    elif grant_type == "refresh_token":
        credentials = RefreshCredentials(_required(form, "refresh_token"))
    else:
        raise UnsupportedGrant(
            f"grant_type {grant_type[:40]!r} is not supported: use password or refresh_token"
        )
    service = _required(form, "service")
    client_id = refresh.check_client_id(_required(form, "client_id"))
    offline = form.get("access_type") == "offline"
    issued, refresh_token = _grant(
        service,
        form.getlist("scope"),
        credentials,
        account=None,
        client_id=client_id if offline else None,
    )
    body = issued.oauth_response()
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return _json(body)


def _json(body: dict[str, Any]) -> Response:
    # Not jsonify: sorting the keys and Flask's JSON provider cost a token answer more than its
    # signature's encoding; the answer is plain strings and numbers.
    return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")


def _required(form: MultiDict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise Invalid(f"the form field {name} is required")
    return value


def _grant(
    service: str | None,
    scope_values: list[str],
    credentials: str | Credentials | None,
    *,
    account: str | None,
    client_id: str | None,
) -> tuple[IssuedToken, str | None]:
    """The access token both forms answer with, and a refresh token when `client_id` asks for
    one: the one presented again (never rotated), else a new one for a password."""
    core = portus()
    expected = core.settings.registry_service
    if service is not None and service != expected:
        raise WrongService(
            f"this token service serves the registry {expected!r}, not {service!r}: the "
            f"registry's auth.token.service must equal PORTUS_REGISTRY_SERVICE ({expected!r})",
        )
    scopes = parse_scopes(scope_values)
    epoch = current_epoch(core.engine)
    try:
        principal = authenticate(
            core.authentication, core.session, credentials, account=account, epoch=epoch
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
    if client_id is None:
        return issued, None
    if isinstance(credentials, RefreshCredentials):
        return issued, credentials.token
    return issued, _new_refresh_token(core, principal, client_id)


def _new_refresh_token(core: Portus, principal: Principal, client_id: str) -> str | None:
    if not earns_refresh_token(core.authentication, principal):
        return None
    with transaction(core.session) as session:
        user = session.get(User, principal.user_id)
        if user is None:  # deleted since its password was checked
            return None
        return refresh.issue(session, core.authentication.hasher, user, client_id)
