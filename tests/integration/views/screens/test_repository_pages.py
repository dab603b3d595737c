"""Repository and tag pages: the user's own access explained, every tag listed, and no page at
all for a repository the user may not pull."""

from __future__ import annotations

import re

import pytest

from tests.support.screens import (
    ADMIN,
    ALL_REPOSITORIES,
    ANONYMOUS,
    BUSYBOX,
    CONTRIBUTOR,
    DEVAPP,
    EVERYONE,
    INSIDEIMG,
    OPENIMG,
    OPSVAULT,
    OTHER,
    OWNER,
    VIEWER,
    VISIBLE,
    World,
    body_of,
    digest,
    is_login_redirect,
    text_of,
)


@pytest.mark.parametrize(
    ("username", "repository", "expected"),
    [
        (
            ADMIN,
            OPSVAULT,
            [
                "Role: none",
                "pull allowed – admin",
                "push allowed – admin",
                "delete allowed – admin",
            ],
        ),
        (
            OWNER,
            DEVAPP,
            [
                "Role: owner",
                "owner through team devcrew (team grant owner, member as owner)",
                "push allowed – role owner",
                "delete allowed – role owner",
            ],
        ),
        (
            CONTRIBUTOR,
            DEVAPP,
            [
                "Role: contributor",
                "contributor through team devcrew (team grant owner, member as contributor)",
                "push allowed – role contributor",
                "delete denied – role contributor may not delete",
            ],
        ),
        (
            VIEWER,
            DEVAPP,
            [
                "Role: viewer",
                "viewer through team devcrew (team grant owner, member as viewer)",
                "pull allowed – role viewer",
                "push denied – role viewer may not push: needs contributor or owner",
            ],
        ),
        (
            OTHER,
            INSIDEIMG,
            [
                "Role: none",
                "pull allowed – the namespace is protected and you are logged in",
                "push denied – no role on namespace 'insiders'",
            ],
        ),
        (
            ANONYMOUS,
            OPENIMG,
            [
                "Role: none",
                "pull allowed – the namespace is public",
                "push denied – anonymous users may only pull",
            ],
        ),
        (
            OTHER,
            BUSYBOX,
            ["pull allowed – the namespace is public", "push denied – no role on namespace"],
        ),
    ],
)
def test_repository_page_explains_the_users_own_access(
    world: World, username: str | None, repository: str, expected: list[str]
) -> None:
    response = world.client(username).get(f"/registry/repositories/{repository}")
    assert response.status_code == 200
    text = text_of(response)
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert f"/{repository}:latest" in text  # the docker pull command
    assert "docker pull " in text
    assert digest(ALL_REPOSITORIES.index(repository) + 1)[7:19] in text  # short digest
    may_delete = username in (ADMIN, OWNER)
    assert ("Delete repository" in text) == may_delete
    assert (f"/registry/delete/{repository}" in body_of(response)) == may_delete


def test_repository_page_lists_every_tag(world: World) -> None:
    response = world.client(VIEWER).get(f"/registry/repositories/{DEVAPP}")
    tags = re.search(r'id="portus-tags">(.*?)</table>', body_of(response), re.S).group(1)
    assert re.findall(r'href="/registry/tags/devteam/devapp/([^"]+)"', tags) == ["latest", "v1"]
    assert "Tags 2" in text_of(response)


@pytest.mark.parametrize("username", EVERYONE)
def test_hidden_repositories_have_no_pages(world: World, username: str | None) -> None:
    client = world.client(username)
    hidden = [*(set(ALL_REPOSITORIES) - VISIBLE[username]), "nosuch/repository", "nosuch"]
    for repository in hidden:
        for url in (
            f"/registry/repositories/{repository}",
            f"/registry/tags/{repository}/latest",
        ):
            response = client.get(url)
            assert response.status_code == 404, (url, response.status_code)
            assert repository not in body_of(response)
        response = client.get(f"/registry/delete/{repository}?tag=latest")
        if username is ANONYMOUS:
            assert is_login_redirect(response)  # anonymous visitors never delete
        else:
            assert response.status_code == 404, (username, repository)
            assert repository not in body_of(response)


def test_tag_page(world: World) -> None:
    client = world.client(CONTRIBUTOR)
    response = client.get(f"/registry/tags/{DEVAPP}/latest")
    assert response.status_code == 200
    text = text_of(response)
    assert f"{DEVAPP}:latest" in text
    assert digest(1) in text
    assert "application/vnd.oci.image.manifest.v1+json" in text
    assert f"by {ADMIN}" in text
    assert "Delete" not in text  # a contributor may not delete here
    assert client.get(f"/registry/tags/{DEVAPP}/nosuchtag").status_code == 404

    response = world.client(OWNER).get(f"/registry/tags/{DEVAPP}/v1")
    assert response.status_code == 200
    assert f"by {OWNER}" in text_of(response)
    assert f"/registry/delete/{DEVAPP}?tag=v1" in body_of(response)

    response = world.client(ANONYMOUS).get(f"/registry/tags/{OPENIMG}/latest")
    assert response.status_code == 200
    assert digest(3) in text_of(response)
