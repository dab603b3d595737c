"""Issue 8, items 5 and 6, against a real HTTP server, the real registry and skopeo: raw bytes
in the Authorization header, and a user whose name docker would read as a registry host."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.conftest import add_user
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def raw_token_request(stack: Stack, authorization: bytes) -> tuple[int, dict[str, str], bytes]:
    """GET /v2/token with `authorization` sent as exactly these bytes."""
    url = urlsplit(stack.portus_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.putrequest("GET", "/v2/token?scope=repository:alice/app:pull")
        connection.putheader(b"Authorization", authorization)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xff\xfe", "Basic é".encode(), "Basic é".encode("latin-1"), b"Basic !!!", b"Bearer x"],
)
def test_raw_authorization_bytes_get_a_401_json_body(stack: Stack, authorization: bytes) -> None:
    status, headers, body = raw_token_request(stack, authorization)
    assert status == 401, body
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    (error,) = json.loads(body)["errors"]
    assert error["code"] == "UNAUTHORIZED"
    assert error["message"].startswith("malformed Authorization header")


def test_user_named_localhost_pushes_to_the_namespace_explain_names(
    stack: Stack, image_layout: str
) -> None:
    with stack.app.app_context():
        add_user(stack.app, "localhost", "localhost-pw")
        explained = stack.cli("portus", "explain", "localhost", "localhost-2/app")
        stack.app.appbuilder.session.remove()
    assert "push: allowed" in explained.output, explained.output
    creds = ("localhost", "localhost-pw")
    client = stack.skopeo("localhost")
    pushed = client.copy(image_layout, "localhost-2/app:v1", creds=creds)
    assert pushed.returncode == 0, pushed.stderr
    assert client.inspect("localhost-2/app:v1", creds=creds).returncode == 0
    # `localhost/app` is `app` on the host `localhost` to the token service, and to explain.
    with stack.app.app_context():
        explained = stack.cli("portus", "explain", "localhost", "localhost/app")
        stack.app.appbuilder.session.remove()
    assert "push: denied" in explained.output, explained.output
    assert client.copy(image_layout, "localhost/app:v1", creds=creds).returncode != 0
