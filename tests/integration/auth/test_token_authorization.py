"""Every Authorization header the token endpoint can be sent gets a 401 JSON body in the endpoint's
error format, or a token: never a 500 (issue 8, item 5). And no answer of the endpoint, error or
not, may be stored by a cache (item 11).

Headers are put into the WSGI environ directly, as a server hands them over (Latin-1 text: a
byte on the wire is one character up to U+00FF), so the test client cannot refuse or re-encode
them.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.auth.authenticate import MAX_AUTHORIZATION
from portus_fab.core import portus
from tests.conftest import add_user

TOKEN = "/v2/token"


def basic(payload: bytes) -> str:
    return "Basic " + base64.b64encode(payload).decode()


def on_the_wire(text: str) -> str:
    """What a WSGI server makes of `text` sent as UTF-8 bytes."""
    return text.encode().decode("latin-1")


@pytest.fixture
def users(app: Flask) -> None:
    add_user(app, "alice")
    add_user(app, "josé")
    app.appbuilder.session.commit()


def ask(client: FlaskClient, authorization: str, **params: str) -> Any:
    return client.get(
        TOKEN, query_string=params, environ_overrides={"HTTP_AUTHORIZATION": authorization}
    )


def assert_refused(response: Any, fragment: str) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    (error,) = body["errors"]
    assert error["code"] == "UNAUTHORIZED"
    assert fragment in error["message"]
    assert body["details"] == error["message"]
    assert "token" not in body
    assert response.headers["WWW-Authenticate"].startswith("Basic")


REFUSED = {
    # not base64 at all, or not ASCII
    "raw bytes ff fe": ("Basic \xff\xfe", "not base64"),
    "e acute": ("Basic é", "not base64"),
    "e acute as UTF-8 on the wire": (on_the_wire("Basic é"), "not base64"),
    "CJK as UTF-8 on the wire": (on_the_wire("Basic 日本"), "not base64"),
    "invalid base64": ("Basic !!!not-base64", "not base64"),
    "base64 with junk": ("Basic YWxpY2U6c2VjcmV0!", "not base64"),
    "bad padding": ("Basic YWxpY2U6c2VjcmV", "not base64"),
    "NUL in base64": ("Basic YWxp\x00Y2U6c2VjcmV0", "not base64"),
    # base64 of something that is not username:password in UTF-8
    "Latin-1 credentials": (basic("é:é".encode("latin-1")), "not UTF-8"),
    "bytes ff fe": (basic(b"\xff\xfe:\xff"), "not UTF-8"),
    "no colon": (basic(b"alice"), "username:password"),
    "nothing": ("Basic ", "username:password"),
    "scheme only": ("Basic", "username:password"),
    # other schemes
    "bearer": ("Bearer abc", "use HTTP Basic"),
    "digest": ("Digest username=alice", "use HTTP Basic"),
    "no scheme": (base64.b64encode(b"alice:secret").decode(), "use HTTP Basic"),
    "non-ASCII scheme": ("Básic YWxpY2U6c2VjcmV0", "use HTTP Basic"),
    # too long for any server to pass on
    "huge": ("Basic " + "A" * MAX_AUTHORIZATION, f"longer than {MAX_AUTHORIZATION}"),
    # well-formed, proving no one
    "empty username": (basic(b":secret"), "invalid username or password"),
    "empty password": (basic(b"alice:"), "invalid username or password"),
    "wrong password": (basic(b"alice:wrong"), "invalid username or password"),
    "NUL in username": (basic(b"al\x00ice:secret"), "invalid username or password"),
    "unknown user in UTF-8": (basic("zoë:secret".encode()), "invalid username or password"),
}


@pytest.mark.parametrize(("header", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_every_bad_authorization_header_is_a_401(
    client: FlaskClient, users: None, header: str, fragment: str
) -> None:
    assert_refused(ask(client, header, scope="repository:alice/app:pull"), fragment)


ACCEPTED = {
    "plain": (basic(b"alice:secret"), "alice"),
    "lowercase scheme": ("basic " + base64.b64encode(b"alice:secret").decode(), "alice"),
    "uppercase scheme": ("BASIC " + base64.b64encode(b"alice:secret").decode(), "alice"),
    "spaces around": ("  Basic   " + base64.b64encode(b"alice:secret").decode() + " ", "alice"),
    "UTF-8 username": (basic("josé:secret".encode()), "josé"),
    "colon in password": (basic(b"alice:secret"), "alice"),
}


@pytest.mark.parametrize(("header", "subject"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_good_basic_credentials_get_a_token(
    client: FlaskClient, users: None, header: str, subject: str
) -> None:
    response = ask(client, header)
    assert response.status_code == 200, response.get_data(as_text=True)
    claims = jwt.decode(response.get_json()["token"], options={"verify_signature": False})
    assert claims["sub"] == subject


def test_a_password_may_hold_colons(app: Flask, client: FlaskClient) -> None:
    add_user(app, "carol", "pass:with:colons")
    app.appbuilder.session.commit()
    assert ask(client, basic(b"carol:pass:with:colons")).status_code == 200
    assert_refused(ask(client, basic(b"carol:pass")), "invalid username or password")


def test_an_empty_header_is_anonymous(client: FlaskClient) -> None:
    response = ask(client, "")
    assert response.status_code == 200
    claims = jwt.decode(response.get_json()["token"], options={"verify_signature": False})
    assert claims["sub"] == ""


# --- Cache-Control on every answer ---------------------------------------------------------------


def every_kind_of_answer(client: FlaskClient) -> dict[str, Any]:
    service = portus().settings.registry_service
    good = basic(b"alice:secret")
    return {
        "anonymous token": client.get(TOKEN),
        "user token": ask(client, good, service=service, scope="repository:alice/app:pull"),
        "HEAD": client.head(TOKEN, environ_overrides={"HTTP_AUTHORIZATION": good}),
        "wrong service": ask(client, good, service="elsewhere.example.com"),
        "bad scope": ask(client, good, scope="repository:Alice:pull"),
        "bad credentials": ask(client, basic(b"alice:wrong")),
        "malformed header": ask(client, "Basic \xff\xfe"),
        "account mismatch": ask(client, good, account="bob"),
    }


def test_no_answer_may_be_stored(client: FlaskClient, users: None) -> None:
    answers = every_kind_of_answer(client)
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "anonymous token": 200,
        "user token": 200,
        "HEAD": 200,
        "wrong service": 400,
        "bad scope": 400,
        "bad credentials": 401,
        "malformed header": 401,
        "account mismatch": 401,
    }
    for name, answer in answers.items():
        assert answer.headers.get("Cache-Control") == "no-store", name
        assert answer.headers.get("Pragma") == "no-cache", name
