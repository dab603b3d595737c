"""Teams and their members in the screens: the last owner stays, no duplicate membership, and a
team owner manages their own team's members only."""

from __future__ import annotations

import pytest

from portus_fab.models import Role, TeamMember
from tests.support.screens import (
    ADMIN,
    CONTRIBUTOR,
    DEVAPP,
    NOT_OFFERED,
    OTHER,
    OWNER,
    VIEWER,
    World,
    body_of,
    explore_repositories,
    flashes,
    fresh,
    members,
    refused,
)


@pytest.mark.parametrize("username", [ADMIN, OWNER])
def test_the_last_owner_of_a_team_stays(world: World, username: str) -> None:
    member = world.member_id("devcrew", OWNER)
    team, user = world.team_id("devcrew"), OWNER
    before = members(world.app)
    client = world.client(username)

    response = client.post(f"/teammemberview/delete/{member}", follow_redirects=True)
    assert "olivia is the last owner of team devcrew" in flashes(response), flashes(response)
    assert members(world.app) == before

    for role in ("contributor", "viewer"):
        response = client.post(
            f"/teammemberview/edit/{member}",
            data={"team": team, "user": user, "role": role},
            follow_redirects=True,
        )
        assert "olivia is the last owner of team devcrew" in flashes(response), flashes(response)
        assert members(world.app) == before

    # With a second owner, the first may step down.
    carl = world.member_id("devcrew", CONTRIBUTOR)
    response = client.post(
        f"/teammemberview/edit/{carl}",
        data={"team": team, "user": CONTRIBUTOR, "role": "owner"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    response = client.post(
        f"/teammemberview/edit/{member}",
        data={"team": team, "user": user, "role": "viewer"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, TeamMember, member).role == Role.VIEWER


def test_a_membership_cannot_be_edited_into_a_duplicate(world: World) -> None:
    carl = world.member_id("devcrew", CONTRIBUTOR)
    before = members(world.app)
    response = world.client(OWNER).post(
        f"/teammemberview/edit/{carl}",
        data={"team": world.team_id("devcrew"), "user": VIEWER, "role": "viewer"},
        follow_redirects=True,
    )
    assert "vera is already in team devcrew: edit their role" in flashes(response)
    assert members(world.app) == before


def test_team_owner_adds_members_to_their_team_only(world: World) -> None:
    client = world.client(OWNER)
    response = client.get("/teammemberview/add")
    assert response.status_code == 200
    assert "devcrew" in body_of(response)
    assert "opscrew" not in body_of(response)

    other = world.user_id(OTHER)
    response = client.post(
        "/teammemberview/add",
        data={"team": world.team_id("devcrew"), "user": OTHER, "role": "viewer"},
        follow_redirects=True,
    )
    assert "Added Row" in flashes(response), flashes(response)
    assert (world.team_id("devcrew"), other, "viewer") in members(world.app)
    # oscar now pulls devteam's repositories.
    assert DEVAPP in explore_repositories(world.client(OTHER).get("/registry/"))

    response = client.post(
        "/teammemberview/add",
        data={"team": world.team_id("devcrew"), "user": OTHER, "role": "owner"},
        follow_redirects=True,
    )
    assert "oscar is already in team devcrew: edit their role" in flashes(response)

    before = members(world.app)
    response = client.post(
        "/teammemberview/add",
        data={"team": world.team_id("opscrew"), "user": OWNER, "role": "owner"},
        follow_redirects=True,
    )
    assert NOT_OFFERED in flashes(response), flashes(response)
    assert members(world.app) == before
    # ... nor move a member of their team into another team.
    response = client.post(
        f"/teammemberview/edit/{world.member_id('devcrew', VIEWER)}",
        data={"team": world.team_id("opscrew"), "user": VIEWER, "role": "owner"},
        follow_redirects=True,
    )
    assert NOT_OFFERED in flashes(response), flashes(response)
    assert members(world.app) == before
    # Teams themselves are created and edited by admins.
    assert refused(client.get("/teamview/add"))
    assert refused(client.get(f"/teamview/edit/{world.team_id('devcrew')}"))


def test_members_who_are_not_owners_manage_nothing(world: World) -> None:
    before = members(world.app)
    for username in (CONTRIBUTOR, VIEWER, OTHER):
        response = world.client(username).post(
            "/teammemberview/add",
            data={
                "team": world.team_id("devcrew"),
                "user": username,
                "role": "owner",
            },
            follow_redirects=True,
        )
        assert NOT_OFFERED in flashes(response), flashes(response)
    assert members(world.app) == before
