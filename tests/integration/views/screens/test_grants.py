"""The grant screens: one user or one team per grant, and no duplicate by add or by edit."""

from __future__ import annotations

import pytest

from portus_fab.models import Grant, Role
from tests.support.screens import ADMIN, OWNER, World, flashes, fresh, grants


@pytest.mark.parametrize(
    ("principal", "error"),
    [
        ({"user": "", "team": ""}, "a grant is for exactly one user or one team"),
        ({"user": "oscar", "team": "opscrew"}, "a grant is for exactly one user or one team"),
        ({"user": "", "team": "devcrew"}, "team devcrew already has a grant on devteam"),
        ({"user": "olivia", "team": ""}, None),
    ],
)
@pytest.mark.parametrize("username", [ADMIN, OWNER])
def test_grant_add_validation(
    world: World, username: str, principal: dict[str, str], error: str | None
) -> None:
    data = {
        "namespace": world.namespace_id("devteam"),
        "user": principal["user"],
        "team": principal["team"],
        "role": "viewer",
    }
    before = grants(world.app)
    response = world.client(username).post("/grantview/add", data=data, follow_redirects=True)
    assert response.status_code == 200
    if error is None:
        assert "Added Row" in flashes(response), flashes(response)
        added = grants(world.app) - before
        assert added == {(data["namespace"], world.user_id(OWNER), None, "viewer")}
        return
    assert error in flashes(response), flashes(response)
    assert grants(world.app) == before


def test_grant_edit_into_a_duplicate_is_refused(world: World) -> None:
    devteam = world.namespace_id("devteam")
    opsonly = world.namespace_id("opsonly")
    ops_grant = world.id_of(Grant, namespace_id=opsonly)
    before = grants(world.app)
    response = world.client(ADMIN).post(
        f"/grantview/edit/{ops_grant}",
        data={
            "namespace": devteam,
            "team": "devcrew",
            "user": "",
            "role": "viewer",
        },
        follow_redirects=True,
    )
    assert "team devcrew already has a grant on devteam: edit that one" in flashes(response)
    assert grants(world.app) == before
    # Changing only the role of a grant is no duplicate.
    response = world.client(ADMIN).post(
        f"/grantview/edit/{ops_grant}",
        data={
            "namespace": opsonly,
            "team": "opscrew",
            "user": "",
            "role": "viewer",
        },
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Grant, ops_grant).role == Role.VIEWER
