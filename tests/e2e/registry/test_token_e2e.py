"""Token service against a real docker-registry 2.8 and a real skopeo client."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import add_user, make_app
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def _user(stack: Stack, name: str, **kwargs: object) -> tuple[str, str]:
    with stack.app.app_context():
        add_user(stack.app, name, f"{name}-pw", **kwargs)
        stack.app.appbuilder.session.remove()
    return name, f"{name}-pw"


def _cli(stack: Stack, *args: str) -> None:
    with stack.app.app_context():
        result = stack.cli(*args)
        stack.app.appbuilder.session.remove()
    assert result.exit_code == 0, result.output


def test_login_good_and_bad(stack: Stack) -> None:
    user, password = _user(stack, "lena")
    client = stack.skopeo("lena")
    assert client.login(user, password).returncode == 0
    bad = client.login(user, "wrong")
    assert bad.returncode != 0
    assert "invalid username/password" in bad.stderr


def test_owner_pushes_and_pulls_back_others_cannot(stack: Stack, image_layout: str) -> None:
    alice = _user(stack, "alice")
    bob = _user(stack, "bob")
    pushed = stack.skopeo("alice").copy(image_layout, "alice/app:v1", creds=alice)
    assert pushed.returncode == 0, pushed.stderr
    tags = stack.skopeo("alice").list_tags("alice/app", creds=alice)
    assert tags.returncode == 0 and '"v1"' in tags.stdout
    pulled = stack.skopeo("alice").pull("alice/app:v1", stack.workdir / "alice-pull", creds=alice)
    assert pulled.returncode == 0, pulled.stderr

    bob_client = stack.skopeo("bob")
    assert bob_client.copy(image_layout, "alice/app:bob", creds=bob).returncode != 0
    assert bob_client.inspect("alice/app:v1", creds=bob).returncode != 0
    assert stack.skopeo("anon").inspect("alice/app:v1").returncode != 0

    _cli(stack, "portus", "namespace", "set-visibility", "alice", "public")
    anonymous = stack.skopeo("anon").inspect("alice/app:v1")
    assert anonymous.returncode == 0, anonymous.stderr
    # Public gives pull, never push.
    assert bob_client.copy(image_layout, "alice/app:bob", creds=bob).returncode != 0


def test_team_namespace_contributor_pushes_viewer_pulls(stack: Stack, image_layout: str) -> None:
    carol = _user(stack, "carol")
    dave = _user(stack, "dave")
    _cli(stack, "portus", "namespace", "create", "devs")
    _cli(stack, "portus", "team", "create", "developers")
    _cli(stack, "portus", "team", "add-member", "developers", "carol", "--role", "contributor")
    _cli(stack, "portus", "team", "add-member", "developers", "dave", "--role", "viewer")
    _cli(stack, "portus", "grant", "devs", "--team", "developers", "--role", "owner")

    pushed = stack.skopeo("carol").copy(image_layout, "devs/tool:1.0", creds=carol)
    assert pushed.returncode == 0, pushed.stderr
    assert stack.skopeo("dave").inspect("devs/tool:1.0", creds=dave).returncode == 0
    assert stack.skopeo("dave").copy(image_layout, "devs/tool:dave", creds=dave).returncode != 0
    # The contributor may not delete (PORTUS_DELETE_BY_CONTRIBUTORS is off).
    assert stack.skopeo("carol").delete("devs/tool:1.0", creds=carol).returncode != 0


def test_admin_pushes_global_image_user_pulls(stack: Stack, image_layout: str) -> None:
    root = _user(stack, "root", admin=True)
    erin = _user(stack, "erin")
    pushed = stack.skopeo("root").copy(image_layout, "busybox:latest", creds=root)
    assert pushed.returncode == 0, pushed.stderr
    assert stack.skopeo("erin").inspect("busybox:latest", creds=erin).returncode == 0
    assert stack.skopeo("erin").copy(image_layout, "busybox:erin", creds=erin).returncode != 0


def test_push_into_unknown_namespace_refused(stack: Stack, image_layout: str) -> None:
    admin = _user(stack, "boss", admin=True)
    refused = stack.skopeo("boss").copy(image_layout, "nowhere/app:v1", creds=admin)
    assert refused.returncode != 0


def test_disabled_user_refused(stack: Stack, image_layout: str) -> None:
    frank = _user(stack, "frank", active=False)
    client = stack.skopeo("frank")
    assert client.login(*frank).returncode != 0
    assert client.copy(image_layout, "frank/app:v1", creds=frank).returncode != 0


def _token(stack: Stack, creds: tuple[str, str], scope: str) -> str:
    answer = requests.get(
        f"{stack.portus_url}/v2/token",
        params={"service": stack.registry.host, "scope": scope},
        auth=creds,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_catalog_for_admins_only(stack: Stack) -> None:
    admin = _user(stack, "cataloguer", admin=True)
    user = _user(stack, "gina")
    catalog = f"{stack.registry.url}/v2/_catalog"
    for creds, expected in ((admin, 200), (user, 401)):
        token = _token(stack, creds, "registry:catalog:*")
        answer = requests.get(catalog, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == expected, answer.text
    token = _token(stack, admin, "registry:catalog:*")
    listing = requests.get(catalog, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert "repositories" in listing.json()


def test_doctor_reports_a_healthy_wiring(stack: Stack) -> None:
    with stack.app.app_context():
        result = stack.cli("portus", "doctor")
        stack.app.appbuilder.session.remove()
    for line in (
        "ok   registry realm",
        "ok   registry service",
        "ok   registry trusts our tokens",
        "ok   database",
        "ok   broker",
    ):
        assert line in result.output, result.output
    health = requests.get(f"{stack.portus_url}/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_doctor_names_a_service_mismatch(stack: Stack, template_dir: Path, tmp_path: Path) -> None:
    wrong = make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_PUBLIC_URL=stack.portus_url,
        PORTUS_REGISTRY_URL=stack.registry.url,
        PORTUS_REGISTRY_SERVICE="registry.example.com",
    )
    with wrong.app_context():
        result = wrong.test_cli_runner().invoke(args=["portus", "doctor"])
        wrong.appbuilder.session.remove()
    assert result.exit_code == 1
    assert (
        f"FAIL registry service: the registry says '{stack.registry.host}', "
        "portus_fab expects 'registry.example.com'"
    ) in result.output
