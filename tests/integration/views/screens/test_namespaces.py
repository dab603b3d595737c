"""The namespace screens: names validated with clear errors, added by admins only, the global
namespace never private, and an owner editing their namespace and its grants."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from portus_fab.models import GLOBAL_NAMESPACE, Namespace, Visibility
from tests.support.screens import (
    ADMIN,
    ANONYMOUS,
    BUSYBOX,
    DEVAPP,
    NOT_OFFERED,
    OTHER,
    OWNER,
    World,
    body_of,
    explore_repositories,
    flashes,
    fresh,
    grants,
    refused,
)


def namespace_names(app: Flask) -> set[str]:
    session = app.appbuilder.session
    session.expire_all()
    return set(session.scalars(select(Namespace.name)))


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("BadName", "invalid namespace name 'BadName'"),
        ("my.team", "no dots: docker would read them as a registry host"),
        ("_global", "invalid namespace name '_global'"),
        ("a--", "invalid namespace name 'a--'"),
        ("x" * 300, "a namespace name has at most"),
        ("devteam", "Already exists."),  # FAB's unique validator
    ],
)
def test_namespace_add_refuses_bad_names(world: World, name: str, error: str) -> None:
    before = namespace_names(world.app)
    response = world.client(ADMIN).post(
        "/namespaceview/add",
        data={"name": name, "visibility": "public", "description": "d"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert error in flashes(response), flashes(response)
    assert namespace_names(world.app) == before


def test_namespace_add_by_admin(world: World) -> None:
    response = world.client(ADMIN).post(
        "/namespaceview/add",
        data={"name": "web-team", "visibility": "protected", "description": "the web"},
        follow_redirects=True,
    )
    assert "Added Row" in flashes(response), flashes(response)
    session = world.app.appbuilder.session
    created = session.scalar(select(Namespace).where(Namespace.name == "web-team"))
    assert (created.visibility, created.kind.value) == (Visibility.PROTECTED, "team")
    # Users do not create namespaces in the screen (admins only, for now).
    response = world.client(OWNER).post(
        "/namespaceview/add", data={"name": "mine", "visibility": "public", "description": "d"}
    )
    assert refused(response)
    assert "mine" not in namespace_names(world.app)


def test_global_namespace_cannot_be_made_private(world: World) -> None:
    global_id = world.namespace_id(GLOBAL_NAMESPACE)
    response = world.client(ADMIN).post(
        f"/namespaceview/edit/{global_id}",
        data={"visibility": "private", "description": "changed"},
        follow_redirects=True,
    )
    assert "the global namespace cannot be private" in flashes(response), flashes(response)
    namespace = fresh(world.app, Namespace, global_id)
    assert namespace.visibility == Visibility.PUBLIC
    assert namespace.description != "changed"
    # protected is fine
    response = world.client(ADMIN).post(
        f"/namespaceview/edit/{global_id}",
        data={"visibility": "protected", "description": "changed"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Namespace, global_id).visibility == Visibility.PROTECTED
    # ... and anonymous visitors no longer see busybox.
    assert BUSYBOX not in explore_repositories(world.client(ANONYMOUS).get("/registry/"))


def test_namespace_owner_edits_their_namespace_and_its_grants(world: World) -> None:
    client = world.client(OWNER)
    devteam = world.namespace_id("devteam")
    response = client.get(f"/namespaceview/edit/{devteam}")
    assert response.status_code == 200
    response = client.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "protected", "description": "now for everyone"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    namespace = fresh(world.app, Namespace, devteam)
    assert (namespace.visibility, namespace.description) == (
        Visibility.PROTECTED,
        "now for everyone",
    )
    assert DEVAPP in explore_repositories(world.client(OTHER).get("/registry/"))
    assert DEVAPP not in explore_repositories(world.client(ANONYMOUS).get("/registry/"))

    # The description may be cleared (stored as empty text).
    response = client.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "protected", "description": ""},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Namespace, devteam).description == ""

    # Grants on it: the add form offers only the namespaces they own.
    response = client.get("/grantview/add")
    assert "devteam" in body_of(response)
    assert "opsonly" not in body_of(response)
    response = client.post(
        "/grantview/add",
        data={
            "namespace": devteam,
            "user": OTHER,
            "team": "",
            "role": "contributor",
        },
        follow_redirects=True,
    )
    assert "Added Row" in flashes(response), flashes(response)
    assert (devteam, world.user_id(OTHER), None, "contributor") in grants(world.app)

    before = grants(world.app)
    response = client.post(
        "/grantview/add",
        data={
            "namespace": world.namespace_id("opsonly"),
            "user": OWNER,
            "team": "",
            "role": "owner",
        },
        follow_redirects=True,
    )
    assert NOT_OFFERED in flashes(response), flashes(response)
    assert grants(world.app) == before
    response = client.post(
        f"/namespaceview/edit/{world.namespace_id('opsonly')}",
        data={"visibility": "public", "description": "x"},
    )
    assert response.status_code == 404
    assert fresh(world.app, Namespace, world.namespace_id("opsonly")).visibility == (
        Visibility.PRIVATE
    )
    # Namespace owners edit descriptions, not names or kinds.
    assert "name" not in re.findall(
        r'<(?:input|select)[^>]* name="(\w+)"',
        body_of(client.get(f"/namespaceview/edit/{devteam}")),
    )
