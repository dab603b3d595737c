"""PORTUS_GROUP_TEAMS: what a group gives, and which settings stop the app."""

from __future__ import annotations

from typing import Any

import pytest

from portus_fab.access.group_teams import group_key, parse_group_teams, wanted_teams
from portus_fab.models import Role

DEVS = "cn=devs,ou=groups,dc=example,dc=org"
OPS = "cn=ops,ou=groups,dc=example,dc=org"


def test_a_group_gives_one_team_or_several() -> None:
    mapping = parse_group_teams(
        {DEVS: ["devs", "contributor"], OPS: [["ops", "owner"], ["devs", "viewer"]]}
    )
    assert wanted_teams([DEVS], mapping) == {"devs": Role.CONTRIBUTOR}
    assert wanted_teams([OPS], mapping) == {"ops": Role.OWNER, "devs": Role.VIEWER}
    # Where two groups give the same team, the higher role wins, in either order.
    both = {"devs": Role.CONTRIBUTOR, "ops": Role.OWNER}
    assert wanted_teams([DEVS, OPS], mapping) == both
    assert wanted_teams([OPS, DEVS], mapping) == both
    assert wanted_teams(["cn=other,dc=example,dc=org"], mapping) == {}


def test_groups_compare_as_ldap_compares_dns() -> None:
    mapping = parse_group_teams({"CN=Devs, OU=Groups, DC=example, DC=org": ["devs", "viewer"]})
    assert wanted_teams([DEVS], mapping) == {"devs": Role.VIEWER}
    assert group_key("CN=Devs, ou=groups") == group_key("cn=devs,OU=GROUPS")
    assert wanted_teams(["platform"], parse_group_teams({"Platform": ["p", "owner"]})) == {
        "p": Role.OWNER
    }


@pytest.mark.parametrize(
    "value",
    [
        {DEVS: "devs"},  # no role
        {DEVS: ["devs", "admin"]},  # not a team role
        {DEVS: ["devs", "viewer", "extra"]},
        {DEVS: [["devs", "viewer"], "ops"]},
        {DEVS: None},
        {1: ["devs", "viewer"]},
    ],
    ids=["no-role", "unknown-role", "triple", "half-list", "none", "not-a-group"],
)
def test_a_mistake_stops_the_app(value: dict[Any, Any]) -> None:
    with pytest.raises(ValueError, match="PORTUS_GROUP_TEAMS"):
        parse_group_teams(value)
