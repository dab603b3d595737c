"""Repositories and tags in the CRUD screens: only namespace owners edit descriptions; nobody
adds or deletes them there."""

from __future__ import annotations

from portus_fab.models import Repository, Tag
from tests.support.screens import (
    ADMIN,
    CONTRIBUTOR,
    DEVAPP,
    OWNER,
    VIEWER,
    World,
    flashes,
    fresh,
    refused,
    text_of,
)


def test_only_namespace_owners_edit_repository_descriptions(world: World) -> None:
    devapp = world.repository_id(DEVAPP)
    response = world.client(CONTRIBUTOR).post(
        f"/repositoryview/edit/{devapp}", data={"description": "hijacked"}, follow_redirects=True
    )
    assert "only the namespace's owners edit its repositories" in flashes(response)
    assert fresh(world.app, Repository, devapp).description == ""
    response = world.client(OWNER).post(
        f"/repositoryview/edit/{devapp}", data={"description": "the app"}, follow_redirects=True
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Repository, devapp).description == "the app"
    assert "the app" in text_of(world.client(VIEWER).get(f"/registry/repositories/{DEVAPP}"))
    # Repositories and tags are never added or deleted in the CRUD screens.
    tag = world.tag_id(DEVAPP, "latest")
    for username in (ADMIN, OWNER):
        client = world.client(username)
        assert refused(client.get("/repositoryview/add"))
        assert refused(client.post(f"/repositoryview/delete/{devapp}"))
        assert refused(client.post(f"/tagview/delete/{tag}"))
        assert refused(client.post(f"/tagview/edit/{tag}", data={"name": "renamed"}))
    assert fresh(world.app, Tag, tag).name == "latest"
