"""No namespace is named like a registry host, on any path that names namespaces, and
`portus explain` and the token endpoint agree on every name (issue 8, item 6).

A first component docker reads as a host (`localhost`, anything with '.' or ':', uppercase) is
stripped from scopes by the token endpoint; a namespace named like one would be granted by the
policy and never reachable through a token.
"""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.models import Namespace, NamespaceKind
from portus_fab.registry.names import is_registry_host
from tests.conftest import add_user

PASSWORD = "secret"


def personal_namespace(app: Flask, username: str) -> str:
    session = app.appbuilder.session
    session.expire_all()
    user = app.appbuilder.sm.find_user(username=username)
    return session.scalar(
        select(Namespace.name).where(
            Namespace.user_id == user.id, Namespace.kind == NamespaceKind.PERSONAL
        )
    )


@pytest.mark.parametrize(
    ("usernames", "expected"),
    [
        (["localhost"], "localhost-2"),
        (["LocalHost"], "localhost-2"),
        (["LOCALHOST"], "localhost-2"),
        (["localhost-2", "localhost"], "localhost-3"),  # the first free suffix, as on a clash
        (["local.host"], "local-host"),
        (["my.registry:5000"], "my-registry-5000"),
    ],
)
def test_personal_namespace_is_never_a_host(
    app: Flask, usernames: list[str], expected: str
) -> None:
    for username in usernames:
        add_user(app, username)
    name = personal_namespace(app, usernames[-1])
    assert name == expected
    assert not is_registry_host(name)
    assert management.validate_namespace_name(name) is None


@settings(
    max_examples=40,
    deadline=None,
    database=None,  # write nothing into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(username=st.text(min_size=1, max_size=40))
@example(username="localhost")
@example(username="LocalHost")
def test_every_username_gets_a_valid_non_host_namespace(app: Flask, username: str) -> None:
    name = management.personal_namespace_name(app.appbuilder.session.connection(), username)
    assert not is_registry_host(name)
    assert management.validate_namespace_name(name) is None


HOST_NAMES = ["localhost", "my.team", "registry:5000", "Localhost"]


@pytest.mark.parametrize("name", HOST_NAMES)
def test_cli_refuses_a_host_as_namespace(app: Flask, runner: Any, name: str) -> None:
    result = runner.invoke(args=["portus", "namespace", "create", name])
    assert result.exit_code == 1, result.output
    assert "registry host" in result.stderr or "invalid namespace name" in result.stderr
    assert app.appbuilder.session.scalar(select(Namespace).where(Namespace.name == name)) is None


def flashes(response: Any) -> str:
    text = response.get_data(as_text=True)
    return " ".join(re.findall(r'class="alert alert-[a-z]+"[^>]*>(.*?)</div>', text, re.S))


def admin_client(app: Flask) -> FlaskClient:
    add_user(app, "root", PASSWORD, admin=True)
    client = app.test_client()
    response = client.post("/login/", data={"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def test_screen_refuses_localhost_and_cannot_rename(app: Flask) -> None:
    client = admin_client(app)
    response = client.post(
        "/namespaceview/add",
        data={"name": "localhost", "visibility": "public", "description": "d"},
        follow_redirects=True,
    )
    assert "docker would read it as a registry host" in flashes(response)
    session = app.appbuilder.session
    assert session.scalar(select(Namespace).where(Namespace.name == "localhost")) is None

    team = management.create_namespace(session, "team")
    session.commit()
    # The edit form has no name field: a namespace is named once, when it is added.
    client.post(
        f"/namespaceview/edit/{team.id}",
        data={"name": "localhost", "visibility": "public", "description": "d"},
    )
    session.expire_all()
    assert session.get(Namespace, team.id).name == "team"


# --- explain and the token endpoint agree --------------------------------------------------------


def explained(runner: Any, username: str, repository: str) -> tuple[str, set[str]] | None:
    """The repository `portus explain` judged and the actions it says are allowed; None if it
    refuses the name."""
    result = runner.invoke(args=["portus", "explain", username, repository])
    if result.exit_code == 1 and "no user named" not in result.stderr:
        return None
    assert result.exit_code == 0, result.output
    judged = re.search(r" on (\S+): namespace", result.output)
    assert judged, result.output
    allowed = set(re.findall(r"^(pull|push|delete): allowed", result.output, re.M))
    return judged.group(1), allowed


def granted(client: FlaskClient, username: str, repository: str) -> tuple[str, set[str]] | None:
    """The repository the token endpoint's answer names and the actions it grants; None if it
    refuses the scope."""
    response = client.get(
        "/v2/token",
        query_string={"scope": f"repository:{repository}:pull,push,delete"},
        auth=(username, PASSWORD),
    )
    if response.status_code == 400:
        assert response.get_json()["errors"][0]["code"] == "INVALID_SCOPE"
        return None
    assert response.status_code == 200, response.get_data(as_text=True)
    claims = jwt.decode(response.get_json()["token"], options={"verify_signature": False})
    (entry,) = claims["access"]
    return entry["name"], set(entry["actions"])


USERNAMES = ["localhost-2", "localhost", "Local.Host", "upper", "root"]


def test_explain_and_token_endpoint_agree_on_every_name(
    app: Flask, client: FlaskClient, runner: Any
) -> None:
    for username in USERNAMES:
        add_user(app, username, PASSWORD, admin=username == "root")
    management.create_namespace(app.appbuilder.session, "team")
    app.appbuilder.session.commit()
    personal = {username: personal_namespace(app, username) for username in USERNAMES}
    assert personal["localhost"] == "localhost-3"
    firsts = [*personal.values(), *USERNAMES, *(u.lower() for u in USERNAMES), "team", "localhost"]
    candidates = {f"{first}/app" for first in firsts} | {
        "app",
        "localhost",
        "localhost/team/app",
        "localhost:5000/team/app",
        "my.host/team/app",
        "Team/App",
        "bad_host_/team/app",
        "localhost/",
    }
    refused = 0
    for username in USERNAMES:
        for repository in sorted(candidates):
            answer = explained(runner, username, repository)
            assert answer == granted(client, username, repository), (username, repository)
            refused += answer is None
        # Each user may push into their own namespace, as both say.
        own = granted(client, username, f"{personal[username]}/app")
        assert own is not None and "push" in own[1]
    assert 0 < refused < len(USERNAMES) * len(candidates)  # both kinds of name were tried
