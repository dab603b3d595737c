"""The explore page: what each role finds, searches and sorts, and switching anonymous
browsing off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_app
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
    OPS_OWNER,
    OPSVAULT,
    OTHER,
    OWNER,
    VIEWER,
    VISIBLE,
    World,
    body_of,
    build_world,
    explore_namespaces,
    explore_repositories,
    explore_total,
    is_login_redirect,
)


@pytest.mark.parametrize("username", EVERYONE)
def test_explore_lists_exactly_what_each_role_may_pull(world: World, username: str | None) -> None:
    response = world.client(username).get("/registry/")
    assert response.status_code == 200
    listed = explore_repositories(response)
    assert sorted(listed) == sorted(VISIBLE[username])
    assert explore_total(response) == len(VISIBLE[username])
    body = body_of(response)
    for hidden in set(ALL_REPOSITORIES) - VISIBLE[username]:
        assert hidden not in body
    namespaces = explore_namespaces(response)
    visible_namespaces = {name.split("/")[0] for name in VISIBLE[username] if "/" in name}
    assert visible_namespaces <= set(namespaces)
    for hidden in {"devteam", "opsonly"} - visible_namespaces:
        assert hidden not in namespaces
    # Personal namespaces are private: only their owner (and admins) see them.
    if username in (OWNER, CONTRIBUTOR, VIEWER, OTHER):
        assert username in namespaces
        assert {OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER} & set(namespaces) == {username}
    if username == ADMIN:
        assert {OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER, ADMIN} <= set(namespaces)


def test_explore_search_never_finds_hidden_repositories(world: World) -> None:
    other = world.client(OTHER)
    response = other.get("/registry/?q=img")
    assert explore_repositories(response) == [INSIDEIMG, OPENIMG]
    assert explore_total(response) == 2

    response = other.get("/registry/?q=ops")
    assert explore_repositories(response) == []
    assert explore_total(response) == 0
    assert 'id="portus-no-repositories"' in body_of(response)
    assert OPSVAULT not in body_of(response)

    response = other.get("/registry/?q=DEVAPP")
    assert explore_total(response) == 0
    assert DEVAPP not in body_of(response)

    response = world.client(VIEWER).get("/registry/?q=DEVAPP")
    assert explore_repositories(response) == [DEVAPP]
    assert explore_total(response) == 1

    response = world.client(ADMIN).get("/registry/?q=ops")
    assert explore_repositories(response) == [OPSVAULT]
    assert explore_total(response) == 1

    # LIKE wildcards are searched literally.
    assert explore_total(other.get("/registry/?q=%25")) == 0
    assert explore_total(other.get("/registry/?q=_")) == 0


def test_explore_sorts_by_name_or_last_push(world: World) -> None:
    admin = world.client(ADMIN)
    by_name = explore_repositories(admin.get("/registry/"))
    assert by_name == sorted(ALL_REPOSITORIES)
    # Pushed at T0+1min ... T0+5min in ALL_REPOSITORIES order: newest first.
    by_push = explore_repositories(admin.get("/registry/?sort=pushed"))
    assert by_push == list(reversed(ALL_REPOSITORIES))
    assert explore_repositories(admin.get("/registry/?sort=nonsense")) == by_name

    other = world.client(OTHER)
    assert explore_repositories(other.get("/registry/?sort=pushed")) == [
        BUSYBOX,
        INSIDEIMG,
        OPENIMG,
    ]
    response = other.get("/registry/?sort=pushed&q=img&page=7")
    assert explore_repositories(response) == [INSIDEIMG, OPENIMG]
    assert explore_total(response) == 2
    assert other.get("/registry/?page=x").status_code == 200


def test_anonymous_browsing_can_be_switched_off(template_dir: Path, tmp_path: Path) -> None:
    app = make_app(template_dir, tmp_path / "closed", PORTUS_ANONYMOUS_BROWSE="false")
    with app.app_context():
        world = build_world(app)
        anonymous = world.client(ANONYMOUS)
        for url in ("/registry/", f"/registry/repositories/{OPENIMG}", "/registry/?q=img"):
            response = anonymous.get(url)
            assert is_login_redirect(response), (url, response.status_code)
            assert "portus-repositor" not in body_of(response)
        # Logged-in users still browse.
        response = world.client(OTHER).get("/registry/")
        assert sorted(explore_repositories(response)) == sorted(VISIBLE[OTHER])
        app.appbuilder.session.remove()
