"""The OAuth2 form of the token protocol against a real docker-registry: docker's identity-token
flow in real HTTP requests shaped as docker sends them, and containerd's `ctr` pulling with a
username and password, answered by the POST itself (no GET fallback)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from portus_fab.auth.secrets import SecretKind, looks_like
from tests.conftest import add_user
from tests.e2e.conftest import Stack, start_stack
from tests.support.pusher import OCI_MANIFEST, RawPusher
from tests.support.services import Containerd

pytestmark = pytest.mark.e2e

TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    status: int


class RequestLog:
    """Every request the served app answers: method, path and status (a WSGI middleware, so
    nothing of the app changes)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self._wsgi_app = wsgi_app
        self._lock = threading.Lock()
        self.seen: list[Seen] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def recording(status: str, headers: Any, *args: Any) -> Any:
            with self._lock:
                self.seen.append(
                    Seen(environ["REQUEST_METHOD"], environ["PATH_INFO"], int(status.split()[0]))
                )
            return start_response(status, headers, *args)

        return self._wsgi_app(environ, recording)

    def token_requests(self) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.path == "/v2/token"]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()


@pytest.fixture(scope="module")
def stack(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(template_dir, tmp_path_factory.mktemp("refresh-stack"))


@pytest.fixture(scope="module")
def request_log(stack: Stack) -> RequestLog:
    log = RequestLog(stack.app.wsgi_app)
    stack.app.wsgi_app = log  # type: ignore[method-assign]
    return log


def _user(stack: Stack, name: str) -> tuple[str, str]:
    with stack.app.app_context():
        add_user(stack.app, name, f"{name}-pw")
        stack.app.appbuilder.session.remove()
    return name, f"{name}-pw"


def _new_password(stack: Stack, name: str, password: str) -> None:
    with stack.app.app_context():
        sm = stack.app.appbuilder.sm
        sm.reset_password(sm.find_user(username=name).id, password)
        stack.app.appbuilder.session.remove()


def _layout(image_layout: str) -> tuple[Path, str]:
    path, tag = image_layout.rsplit(":", 1)
    return Path(path), tag


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    service: str


def challenge(stack: Stack) -> Challenge:
    """What the registry tells a client without a token, as docker reads it."""
    answer = requests.get(f"{stack.registry.url}/v2/", timeout=TIMEOUT)
    assert answer.status_code == 401
    fields = dict(re.findall(r'(\w+)="([^"]*)"', answer.headers["WWW-Authenticate"]))
    return Challenge(fields["realm"], fields["service"])


def docker_login(auth: Challenge, user: str, password: str) -> str:
    """`docker login`: GET with Basic, offline_token=true&client_id=docker, and no scope. Its
    identity token is the refresh token it gets back."""
    answer = requests.get(
        auth.realm,
        params={
            "account": user,
            "client_id": "docker",
            "offline_token": "true",
            "service": auth.service,
        },
        auth=(user, password),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    identity = answer.json()["refresh_token"]
    assert looks_like(identity, SecretKind.REFRESH_TOKEN)
    return identity


def docker_token(auth: Challenge, identity: str, *scopes: str) -> requests.Response:
    """The daemon with an identity token: POST grant_type=refresh_token, every scope of the
    challenge in one space-separated field."""
    return requests.post(
        auth.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": identity,
            "service": auth.service,
            "client_id": "docker",
            "scope": " ".join(scopes),
        },
        timeout=TIMEOUT,
    )


def access_token(answer: requests.Response) -> str:
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def bearer(answer: requests.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(answer)}"}


def test_docker_identity_token_flow(stack: Stack, image_layout: str) -> None:
    user, password = _user(stack, "ida")
    auth = challenge(stack)
    identity = docker_login(auth, user, password)
    layout, tag = _layout(image_layout)

    # Pushes and pulls with the identity token alone: the password is forgotten.
    def push_token(repository: str) -> str:
        return access_token(docker_token(auth, identity, f"repository:{repository}:pull,push"))

    digest = RawPusher(stack.registry.url, push_token).layout("ida/base", tag, layout)

    # One token for several scopes, as docker asks for a cross-repository mount: push on the
    # target, pull on the source. The registry honours both.
    both = bearer(
        docker_token(auth, identity, "repository:ida/app:pull,push", "repository:ida/base:pull")
    )
    manifest = requests.get(
        f"{stack.registry.url}/v2/ida/base/manifests/{tag}",
        headers={**both, "Accept": OCI_MANIFEST},
        timeout=TIMEOUT,
    )
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Docker-Content-Digest"] == digest
    layer = manifest.json()["layers"][0]["digest"]
    mounted = requests.post(
        f"{stack.registry.url}/v2/ida/app/blobs/uploads/",
        params={"mount": layer, "from": "ida/base"},
        headers=both,
        timeout=TIMEOUT,
    )
    assert mounted.status_code == 201, mounted.text  # mounted, not a new upload (202)

    # The identity token is not rotated: the same one keeps working.
    assert docker_token(auth, identity, "repository:ida/base:pull").status_code == 200

    # A new password refuses it, in the GET form's JSON shape.
    _new_password(stack, user, "ida-new-pw")
    refused = docker_token(auth, identity, "repository:ida/base:pull")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert refused.headers["Cache-Control"] == "no-store"
    # And `docker login` with the new password gets a new one that works.
    renewed = docker_login(auth, user, "ida-new-pw")
    assert bearer(docker_token(auth, renewed, "repository:ida/base:pull"))


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    with Containerd() as daemon:
        yield daemon


def test_ctr_pulls_with_a_password_through_the_post(
    stack: Stack, request_log: RequestLog, containerd: Containerd, image_layout: str
) -> None:
    user, password = _user(stack, "cora")
    pushed = stack.skopeo("cora").copy(image_layout, "cora/app:v1", creds=(user, password))
    assert pushed.returncode == 0, pushed.stderr
    request_log.clear()
    pulled = containerd.ctr(
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        "--user",
        f"{user}:{password}",
        f"{stack.registry.host}/cora/app:v1",
    )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    listed = containerd.ctr("images", "list", "--quiet")
    assert f"{stack.registry.host}/cora/app:v1" in listed.stdout.split()
    asked = request_log.token_requests()
    # containerd asked, and only by POST: each answered 200, so it never fell back to GET.
    assert asked, "containerd never asked for a token"
    assert {(seen.method, seen.status) for seen in asked} == {("POST", 200)}

    # A wrong password: the POST refuses (401), and containerd's fallback GET does too.
    request_log.clear()
    wrong = containerd.ctr(
        "images",
        "pull",
        "--plain-http",
        "--user",
        f"{user}:wrong",
        f"{stack.registry.host}/cora/app:v1",
    )
    assert wrong.returncode != 0
    assert {seen.status for seen in request_log.token_requests()} == {401}
