"""Personal access tokens against a real docker-registry, skopeo and podman: a token is a
password for `login`, limited by its level and namespaces, refused once revoked or its owner
disabled."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from portus_fab.auth.secrets import SecretKind, looks_like
from tests.conftest import add_user
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def _user(stack: Stack, name: str) -> None:
    with stack.app.app_context():
        add_user(stack.app, name, f"{name}-pw")
        stack.app.appbuilder.session.remove()


def _cli(stack: Stack, *args: str) -> str:
    with stack.app.app_context():
        result = stack.cli("portus", *args)
        stack.app.appbuilder.session.remove()
    assert result.exit_code == 0, result.output
    return result.output


def _token(stack: Stack, user: str, name: str, access: str, *namespaces: str) -> str:
    limits = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
    output = _cli(stack, "token", "create", user, name, "--access", access, *limits)
    secret = output.strip().splitlines()[-1]
    assert looks_like(secret, SecretKind.ACCESS_TOKEN)
    return secret


def test_skopeo_logs_in_and_pushes_with_a_token_a_read_token_cannot_push(
    stack: Stack, image_layout: str
) -> None:
    _user(stack, "tina")
    secret = _token(stack, "tina", "ci", "write")
    client = stack.skopeo("tina-token")
    login = client.login("tina", secret)
    assert login.returncode == 0, login.stderr
    pushed = client.copy(image_layout, "tina/app:v1")  # with the stored login
    assert pushed.returncode == 0, pushed.stderr

    reader = _token(stack, "tina", "reader", "read")
    read_client = stack.skopeo("tina-read")
    assert read_client.login("tina", reader).returncode == 0
    assert read_client.inspect("tina/app:v1").returncode == 0
    refused = read_client.copy(image_layout, "tina/app:v2")
    assert refused.returncode != 0
    assert read_client.list_tags("tina/app").stdout.count('"v2"') == 0


def test_a_token_limited_to_one_namespace_cannot_pull_from_another(
    stack: Stack, image_layout: str
) -> None:
    _user(stack, "nina")
    _cli(stack, "namespace", "create", "ninas")
    _cli(stack, "grant", "ninas", "--user", "nina", "--role", "owner")
    password = ("nina", "nina-pw")
    owner = stack.skopeo("nina")
    assert owner.copy(image_layout, "nina/app:v1", creds=password).returncode == 0
    assert owner.copy(image_layout, "ninas/app:v1", creds=password).returncode == 0

    limited = _token(stack, "nina", "only-ninas", "write", "ninas")
    creds = ("nina", limited)
    client = stack.skopeo("nina-limited")
    assert client.inspect("ninas/app:v1", creds=creds).returncode == 0
    assert client.inspect("nina/app:v1", creds=creds).returncode != 0
    assert client.copy(image_layout, "nina/app:v2", creds=creds).returncode != 0


def test_revoking_the_token_or_disabling_its_owner_stops_the_next_token_request(
    stack: Stack, image_layout: str
) -> None:
    _user(stack, "rita")
    secret = _token(stack, "rita", "ci", "write")
    creds = ("rita", secret)
    client = stack.skopeo("rita")
    assert client.copy(image_layout, "rita/app:v1", creds=creds).returncode == 0
    _cli(stack, "token", "revoke", "rita", "ci")
    assert client.inspect("rita/app:v1", creds=creds).returncode != 0
    assert client.login("rita", secret).returncode != 0

    other = _token(stack, "rita", "other", "read")
    assert client.inspect("rita/app:v1", creds=("rita", other)).returncode == 0
    with stack.app.app_context():
        user = stack.app.appbuilder.sm.find_user(username="rita")
        user.active = False
        stack.app.appbuilder.session.commit()
        stack.app.appbuilder.session.remove()
    assert client.inspect("rita/app:v1", creds=("rita", other)).returncode != 0


def test_podman_logs_in_with_a_token(stack: Stack, tmp_path: Path) -> None:
    _user(stack, "paula")
    secret = _token(stack, "paula", "podman", "read")
    authfile = tmp_path / "auth.json"

    def login(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "/usr/bin/podman",
                "login",
                "--tls-verify=false",
                "--authfile",
                str(authfile),
                "-u",
                "paula",
                "--password-stdin",
                stack.registry.host,
            ],
            input=password,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "REGISTRY_AUTH_FILE": str(authfile)},
            check=False,
        )

    good = login(secret)
    assert good.returncode == 0, good.stderr
    assert authfile.exists()
    assert login(secret[:-1] + ("A" if secret[-1] != "A" else "B")).returncode != 0
