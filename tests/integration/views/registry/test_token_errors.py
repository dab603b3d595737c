"""The token endpoint answers every portus_fab.errors refusal in its protocol, from one map:
a status, a code and the message as docker, skopeo and containerd show it."""

from __future__ import annotations

import pytest
from flask import Flask

from portus_fab.auth.authenticate import AuthenticationRefused
from portus_fab.auth.scopes import ScopeError
from portus_fab.errors import Conflict, Forbidden, Invalid, NotFound, PortusError, Unauthenticated
from portus_fab.views.registry.token import WrongService, _token_error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (AuthenticationRefused("invalid username or password", claimed="x"), 401, "UNAUTHORIZED"),
        (Unauthenticated("who?"), 401, "UNAUTHORIZED"),
        (ScopeError("scope 'x' is malformed"), 400, "INVALID_SCOPE"),
        (WrongService("another registry"), 400, "INVALID_SERVICE"),
        (Invalid("bad"), 400, "INVALID_REQUEST"),
        (Forbidden("no"), 403, "DENIED"),
        (NotFound("none"), 404, "NOT_FOUND"),
        (Conflict("clash"), 400, "INVALID_REQUEST"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, PortusError) else str(value),
)
def test_each_error_class_has_its_answer(
    app: Flask, error: PortusError, status: int, code: str
) -> None:
    with app.test_request_context("/v2/token"):
        response, answered, headers = _token_error(error)
    assert answered == status
    assert response.get_json() == {
        "errors": [{"code": code, "message": str(error)}],
        "details": str(error),
    }
    assert ("WWW-Authenticate" in headers) == (status == 401)


def test_a_refused_login_through_the_endpoint(app: Flask) -> None:
    response = app.test_client().get("/v2/token", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.get_json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="portus_fab"'
