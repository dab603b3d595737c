"""Team memberships synced from a user's groups: what a sign-in makes of them, and that no
screen, command or management call edits a synced row by hand."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.access.group_teams import parse_group_teams, sync_group_teams
from portus_fab.audit import Kind
from portus_fab.errors import Conflict
from portus_fab.models import Activity, Role, Team, TeamMember
from tests.support.screens import OPS_OWNER, World, build_world, flashes, members

DEVS = "cn=devs,ou=groups,dc=example,dc=org"
OPS = "cn=ops,ou=groups,dc=example,dc=org"
MAPPING = parse_group_teams(
    {DEVS: ["devcrew", "contributor"], OPS: [["platform", "owner"], ["devcrew", "viewer"]]}
)


@pytest.fixture
def world(app: Flask) -> World:
    return build_world(app)


def memberships(app: Flask, username: str) -> dict[str, tuple[Role, str | None]]:
    session = app.appbuilder.session
    rows = session.execute(
        select(Team.name, TeamMember.role, TeamMember.source)
        .join(TeamMember.team)
        .join(TeamMember.user)
        .where(User.username == username)
    ).all()
    return {name: (role, source) for name, role, source in rows}


def sync(app: Flask, username: str, groups: list[str], source: str = "ldap") -> None:
    session = app.appbuilder.session
    user = session.scalar(select(User).where(User.username == username))
    sync_group_teams(session, user, groups, MAPPING, source)
    session.commit()


def test_groups_become_memberships_and_leaving_a_group_ends_them(world: World) -> None:
    app = world.app
    # olivia owns devcrew by hand; her groups take that membership over.
    sync(app, "olivia", [OPS, DEVS, "cn=unmapped,dc=example,dc=org"])
    assert memberships(app, "olivia") == {
        "devcrew": (Role.CONTRIBUTOR, "ldap"),  # contributor (devs) beats viewer (ops)
        "platform": (Role.OWNER, "ldap"),  # created on first sync
    }
    platform = app.appbuilder.session.scalar(select(Team).where(Team.name == "platform"))
    assert platform is not None and "ldap" in platform.description

    sync(app, "olivia", [OPS])
    assert memberships(app, "olivia") == {
        "devcrew": (Role.VIEWER, "ldap"),
        "platform": (Role.OWNER, "ldap"),
    }
    sync(app, "olivia", [])
    assert memberships(app, "olivia") == {}
    # The team stays (it may hold grants); only the membership went.
    assert app.appbuilder.session.scalar(select(Team.id).where(Team.name == "platform"))

    kinds = app.appbuilder.session.scalars(select(Activity.kind)).all()
    assert Kind.MEMBER_ADDED in kinds and Kind.MEMBER_REMOVED in kinds


def test_memberships_of_another_source_and_of_unmapped_teams_stay(world: World) -> None:
    app = world.app
    sync(app, "carl", [DEVS], source="oidc")
    sync(app, "carl", [], source="ldap")  # ldap owns none of carl's rows
    assert memberships(app, "carl") == {"devcrew": (Role.CONTRIBUTOR, "oidc")}
    sync(app, OPS_OWNER, [])  # opscrew is not mapped: the hand-made ownership stays
    assert memberships(app, OPS_OWNER) == {"opscrew": (Role.OWNER, None)}


def test_management_refuses_to_change_a_synced_membership(world: World) -> None:
    app = world.app
    sync(app, "carl", [DEVS])
    session = app.appbuilder.session
    team = management.find_team(session, "devcrew")
    carl = management.find_user(session, "carl")
    refusal = "carl's membership of team devcrew comes from the directory \\(ldap\\)"
    with pytest.raises(Conflict, match=refusal):
        management.set_member_role(session, team, carl, Role.OWNER)
    with pytest.raises(Conflict, match=refusal):
        management.remove_member(session, team, carl)
    with pytest.raises(Conflict, match="already in team devcrew"):
        management.add_member(session, team, carl, Role.VIEWER)
    session.rollback()
    assert memberships(app, "carl") == {"devcrew": (Role.CONTRIBUTOR, "ldap")}


@pytest.mark.parametrize("command", ["set-role", "remove-member"])
def test_the_cli_refuses_too(world: World, runner: FlaskCliRunner, command: str) -> None:
    sync(world.app, "carl", [DEVS])
    arguments = ["portus", "team", command, "devcrew", "carl"]
    if command == "set-role":
        arguments += ["--role", "owner"]
    result = runner.invoke(args=arguments)
    assert result.exit_code != 0
    assert "comes from the directory (ldap); change it there" in result.output
    assert memberships(world.app, "carl") == {"devcrew": (Role.CONTRIBUTOR, "ldap")}


def test_the_screens_show_and_refuse_a_synced_membership(world: World) -> None:
    app = world.app
    sync(app, "carl", [DEVS])
    member = world.member_id("devcrew", "carl")
    before = members(app)
    client = world.client("olivia")  # devcrew's owner

    listing = client.get("/teammemberview/list/").get_data(as_text=True)
    assert "Synced from" in listing and "ldap" in listing

    response = client.post(
        f"/teammemberview/edit/{member}",
        data={"team": world.team_id("devcrew"), "user": "carl", "role": "owner"},
        follow_redirects=True,
    )
    assert "comes from the directory (ldap); change it there" in flashes(response)
    response = client.post(f"/teammemberview/delete/{member}", follow_redirects=True)
    assert "comes from the directory (ldap); change it there" in flashes(response)
    assert members(app) == before
