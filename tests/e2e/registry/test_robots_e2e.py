"""Robot accounts against a real docker-registry and skopeo: a robot pushes only where granted
(its namespace with write, another only once that namespace's owner grants it), a read robot
only pulls, and disabling, deleting or rotating takes effect at the next token request."""

from __future__ import annotations

import pytest

from portus_fab.access import management
from portus_fab.auth import robots
from portus_fab.auth.credentials import principal_for
from portus_fab.auth.secrets import SecretKind, looks_like
from portus_fab.core import portus
from tests.conftest import add_user
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def _cli(stack: Stack, *args: str) -> list[str]:
    with stack.app.app_context():
        result = stack.cli("portus", *args)
        stack.app.appbuilder.session.remove()
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


def _robot(stack: Stack, namespace: str, name: str, access: str) -> tuple[str, str]:
    full_name, secret = _cli(stack, "robot", "create", namespace, name, "--access", access)[-2:]
    assert full_name == f"{namespace}+{name}" and looks_like(secret, SecretKind.ROBOT)
    return full_name, secret


def _namespace_owned_by(stack: Stack, namespace: str, username: str) -> None:
    with stack.app.app_context():
        session = stack.app.appbuilder.session
        owner = add_user(stack.app, username, f"{username}-pw")
        created = management.create_namespace(session, namespace)
        management.set_grant(session, created, "owner", user=owner)
        session.commit()
        session.remove()


def _owner_grants(stack: Stack, owner: str, namespace: str, robot: str, role: str) -> None:
    """The namespace's owner (not an admin) gives the robot a role there."""
    with stack.app.app_context():
        session = stack.app.appbuilder.session
        user = stack.app.appbuilder.sm.find_user(username=owner)
        robots.set_robot_grant(
            session,
            principal_for(user, portus().admin_role),
            management.find_namespace(session, namespace),
            robots.find_robot(session, robot),
            role,
        )
        session.commit()
        session.remove()


def test_a_robot_pushes_only_where_granted(stack: Stack, image_layout: str) -> None:
    _namespace_owned_by(stack, "builds", "bea")
    _namespace_owned_by(stack, "releases", "rob")
    robot, secret = _robot(stack, "builds", "ci", "write")
    client = stack.skopeo("robot-ci")
    login = client.login(robot, secret)
    assert login.returncode == 0, login.stderr
    pushed = client.copy(image_layout, "builds/app:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert client.copy(image_layout, "releases/app:v1").returncode != 0
    assert client.copy(image_layout, "bea/app:v1").returncode != 0  # its owner's own namespace

    _owner_grants(stack, "rob", "releases", robot, "contributor")
    pushed = client.copy(image_layout, "releases/app:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert client.inspect("releases/app:v1").returncode == 0


def test_a_read_robot_only_pulls(stack: Stack, image_layout: str) -> None:
    _namespace_owned_by(stack, "mirror", "mia")
    writer = stack.skopeo("mirror-writer")
    assert writer.copy(image_layout, "mirror/app:v1", creds=("mia", "mia-pw")).returncode == 0
    robot, secret = _robot(stack, "mirror", "puller", "read")
    client = stack.skopeo("robot-puller")
    assert client.inspect("mirror/app:v1", creds=(robot, secret)).returncode == 0
    assert client.copy(image_layout, "mirror/app:v2", creds=(robot, secret)).returncode != 0
    tags = writer.list_tags("mirror/app", creds=("mia", "mia-pw")).stdout
    assert '"v1"' in tags and '"v2"' not in tags


def test_disable_rotate_and_delete_stop_the_next_token_request(
    stack: Stack, image_layout: str
) -> None:
    _namespace_owned_by(stack, "deploys", "dan")
    robot, secret = _robot(stack, "deploys", "bot", "write")
    client = stack.skopeo("robot-deploys")
    assert client.copy(image_layout, "deploys/app:v1", creds=(robot, secret)).returncode == 0

    _cli(stack, "robot", "disable", robot)
    assert client.inspect("deploys/app:v1", creds=(robot, secret)).returncode != 0
    assert client.login(robot, secret).returncode != 0
    _cli(stack, "robot", "enable", robot)
    assert client.inspect("deploys/app:v1", creds=(robot, secret)).returncode == 0

    new = _cli(stack, "robot", "rotate", robot)[-1]
    assert client.inspect("deploys/app:v1", creds=(robot, secret)).returncode != 0
    assert client.inspect("deploys/app:v1", creds=(robot, new)).returncode == 0

    _cli(stack, "robot", "delete", robot)
    assert client.inspect("deploys/app:v1", creds=(robot, new)).returncode != 0
