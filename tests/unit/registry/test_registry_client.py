from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portus_fab.registry.client import RegistryClient, RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import DOCKER_MANIFEST, MANIFEST_ACCEPT

SECRET_TOKEN = "very-secret-token"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: object, status: int = 200, **headers: str) -> Reply:
        return cls(
            status, json.dumps(document).encode(), {"Content-Type": "application/json", **headers}
        )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeRegistry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[tuple[str, str], Reply | Callable[[], Reply]] = {}
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def _answer(self) -> None:
        self.server.seen.append(Seen(self.command, self.path, dict(self.headers)))
        route = self.server.routes.get((self.command, self.path), Reply(404, b"{}"))
        reply = route() if callable(route) else route
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Tokens:
    asked: list[list[str]] = field(default_factory=list)

    def __call__(self, scopes: list[str]) -> str:
        self.asked.append(scopes)
        return SECRET_TOKEN


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def client(registry: FakeRegistry, tokens: Tokens) -> RegistryClient:
    return RegistryClient(registry.url + "/", tokens, timeout=5)


def test_ping_sends_a_token_without_scopes(
    registry: FakeRegistry, client: RegistryClient, tokens: Tokens
) -> None:
    registry.routes[("GET", "/v2/")] = Reply.json({})
    client.ping()
    assert tokens.asked == [[]]
    assert registry.seen[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"


def test_catalog_follows_relative_and_absolute_links(
    registry: FakeRegistry, client: RegistryClient, tokens: Tokens
) -> None:
    registry.routes[("GET", "/v2/_catalog?n=2")] = Reply.json(
        {"repositories": ["a/one", "a/two"]}, Link='</v2/_catalog?last=a%2Ftwo&n=2>; rel="next"'
    )
    registry.routes[("GET", "/v2/_catalog?last=a%2Ftwo&n=2")] = Reply.json(
        {"repositories": ["b/three", "c/four"]},
        Link=f'<{registry.url}/v2/_catalog?last=c%2Ffour&n=2>; rel="next"',
    )
    registry.routes[("GET", "/v2/_catalog?last=c%2Ffour&n=2")] = Reply.json({"repositories": []})
    assert list(client.catalog(page_size=2)) == ["a/one", "a/two", "b/three", "c/four"]
    assert len(registry.seen) == 3
    assert tokens.asked == [["registry:catalog:*"]]  # cached across pages


def test_catalog_refuses_to_send_the_token_elsewhere(
    registry: FakeRegistry, client: RegistryClient
) -> None:
    registry.routes[("GET", "/v2/_catalog?n=100")] = Reply.json(
        {"repositories": ["a/one"]}, Link='<http://evil.example/v2/_catalog?n=100>; rel="next"'
    )
    with pytest.raises(RegistryError, match="refusing to follow"):
        list(client.catalog())


def test_catalog_stops_on_a_looping_link(registry: FakeRegistry, client: RegistryClient) -> None:
    registry.routes[("GET", "/v2/_catalog?n=100")] = Reply.json(
        {"repositories": ["a/one"]}, Link='</v2/_catalog?n=100>; rel="next"'
    )
    assert list(client.catalog()) == ["a/one"]


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        (Reply.json({"name": "alice/app", "tags": ["latest", "v1"]}), ["latest", "v1"]),
        (Reply.json({"name": "alice/app", "tags": None}), []),
    ],
)
def test_tags(
    registry: FakeRegistry, client: RegistryClient, tokens: Tokens, reply: Reply, tags: list[str]
) -> None:
    registry.routes[("GET", "/v2/alice/app/tags/list")] = reply
    assert client.tags("alice/app") == tags
    assert tokens.asked == [["repository:alice/app:pull"]]


def test_unknown_repository_error_names_url_status_and_code(
    registry: FakeRegistry, client: RegistryClient
) -> None:
    registry.routes[("GET", "/v2/alice/gone/tags/list")] = Reply.json(
        {
            "errors": [
                {
                    "code": "NAME_UNKNOWN",
                    "message": "repository name not known to registry",
                    "detail": {"name": "alice/gone"},
                }
            ]
        },
        status=404,
    )
    with pytest.raises(RegistryError) as caught:
        client.tags("alice/gone")
    error = caught.value
    assert not isinstance(error, RegistryUnavailable)
    assert (error.status, error.code) == (404, "NAME_UNKNOWN")
    message = str(error)
    assert f"GET {registry.url}/v2/alice/gone/tags/list -> HTTP 404" in message
    assert "NAME_UNKNOWN: repository name not known to registry" in message
    assert SECRET_TOKEN not in message


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_unavailable(
    registry: FakeRegistry, client: RegistryClient, status: int
) -> None:
    registry.routes[("GET", "/v2/")] = Reply(status, b"<html>oops</html>")
    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}") as caught:
        client.ping()
    assert caught.value.status == status


def test_connection_refused_is_unavailable(tokens: Tokens) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RegistryClient(f"http://127.0.0.1:{port}", tokens, timeout=2)
    with pytest.raises(RegistryUnavailable, match="unreachable") as caught:
        client.ping()
    assert caught.value.status is None
    assert SECRET_TOKEN not in str(caught.value)


def test_unauthorized_retries_once_with_a_fresh_token(
    registry: FakeRegistry, client: RegistryClient, tokens: Tokens
) -> None:
    registry.routes[("GET", "/v2/")] = Reply.json({})
    client.ping()
    registry.routes[("GET", "/v2/")] = Reply.json(
        {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        status=401,
        **{"WWW-Authenticate": 'Bearer realm="https://portus/v2/token",error="invalid_token"'},
    )
    with pytest.raises(RegistryError, match="invalid_token") as caught:
        client.ping()
    assert caught.value.status == 401
    assert len(tokens.asked) == 2  # first ping, then the single retry
    assert len(registry.seen) == 3


def test_manifest_with_digest_header(registry: FakeRegistry, client: RegistryClient) -> None:
    body = b'{"schemaVersion": 2}'
    digest = "sha256:" + "d" * 64
    registry.routes[("GET", "/v2/alice/app/manifests/latest")] = Reply(
        200, body, {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": digest}
    )
    assert client.manifest("alice/app", "latest") == (DOCKER_MANIFEST, digest, body)
    assert registry.seen[0].headers["Accept"] == MANIFEST_ACCEPT


def test_manifest_digest_computed_without_header(
    registry: FakeRegistry, client: RegistryClient
) -> None:
    body = b'{"schemaVersion": 2}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    registry.routes[("GET", f"/v2/alice/app/manifests/{digest}")] = Reply(
        200, body, {"Content-Type": f"{DOCKER_MANIFEST}; charset=utf-8"}
    )
    assert client.manifest("alice/app", digest) == (DOCKER_MANIFEST, digest, body)


@pytest.mark.parametrize(
    ("repository", "reference"), [("../x", "latest"), ("alice/app", "../../_catalog")]
)
def test_invalid_names_are_refused_locally(
    registry: FakeRegistry, client: RegistryClient, repository: str, reference: str
) -> None:
    with pytest.raises(ValueError):
        client.manifest(repository, reference)
    assert registry.seen == []


def test_blob_follows_redirect(registry: FakeRegistry, client: RegistryClient) -> None:
    digest = "sha256:" + "e" * 64
    registry.routes[("GET", f"/v2/alice/app/blobs/{digest}")] = Reply(
        307, headers={"Location": "/storage/config"}
    )
    registry.routes[("GET", "/storage/config")] = Reply(200, b'{"os": "linux"}')
    assert client.blob("alice/app", digest) == b'{"os": "linux"}'


def test_blob_size_cap(
    registry: FakeRegistry, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portus_fab.registry.client.MAX_BLOB_BYTES", 10)
    digest = "sha256:" + "e" * 64
    registry.routes[("GET", f"/v2/alice/app/blobs/{digest}")] = Reply(200, b"x" * 11)
    with pytest.raises(RegistryError, match="exceeds the 10 byte limit"):
        client.blob("alice/app", digest)


def test_delete_manifest(registry: FakeRegistry, client: RegistryClient, tokens: Tokens) -> None:
    digest = "sha256:" + "f" * 64
    registry.routes[("DELETE", f"/v2/alice/app/manifests/{digest}")] = Reply(202)
    client.delete_manifest("alice/app", digest)
    assert tokens.asked == [["repository:alice/app:delete"]]


def test_delete_disabled(registry: FakeRegistry, client: RegistryClient) -> None:
    digest = "sha256:" + "f" * 64
    registry.routes[("DELETE", f"/v2/alice/app/manifests/{digest}")] = Reply.json(
        {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]},
        status=405,
    )
    with pytest.raises(RegistryError, match="storage.delete.enabled") as caught:
        client.delete_manifest("alice/app", digest)
    assert (caught.value.status, caught.value.code) == (405, "UNSUPPORTED")
