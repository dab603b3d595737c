"""'May manage' (Policy.manage_namespace / manage_team, the pure `decide_manage`) and the rows
the management screens show (managed_namespaces / managed_teams) agree on any data, ceilings
included. Same generated worlds as the pull/see agreement."""

from __future__ import annotations

from dataclasses import replace

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portus_fab.access.policy import (
    ANONYMOUS,
    Ceiling,
    Principal,
    PrincipalKind,
    managed_namespaces,
    managed_teams,
)
from portus_fab.auth.credentials import principal_for
from portus_fab.core import portus
from portus_fab.models import Namespace, Role, Team, Visibility
from tests.integration.access.test_policy_agreement import CEILINGS, World, build, worlds


def check_agreement(app: Flask, principals: list[Principal]) -> None:
    session = app.appbuilder.session
    policy = portus().policy()
    namespaces = session.execute(select(Namespace.id, Namespace.name)).all()
    teams = session.execute(select(Team.id, Team.name)).all()
    for principal in principals:
        listed = set(session.scalars(select(Namespace.name).where(managed_namespaces(principal))))
        decided = {n for i, n in namespaces if policy.manage_namespace(principal, i).allowed}
        assert listed == decided, principal
        listed = set(session.scalars(select(Team.name).where(managed_teams(principal))))
        decided = {n for i, n in teams if policy.manage_team(principal, i).allowed}
        assert listed == decided, principal


def principals_of(app: Flask, world: World, ceilings: list[Ceiling]) -> list[Principal]:
    users = build(app, world)
    admin_role = portus().admin_role
    principals = [ANONYMOUS, *(principal_for(user, admin_role) for user in users)]
    capped = [
        replace(principal, kind=PrincipalKind.ACCESS_TOKEN, ceiling=ceiling)
        for principal in principals[1:]
        for ceiling in ceilings
    ]
    return [*principals, *capped]


@settings(
    max_examples=30,
    deadline=None,
    database=None,  # write nothing into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), ceilings=st.lists(CEILINGS, max_size=2))
def test_may_manage_agrees_with_the_managed_rows(
    app: Flask, world: World, ceilings: list[Ceiling]
) -> None:
    try:
        check_agreement(app, principals_of(app, world, ceilings))
    finally:
        app.appbuilder.session.rollback()


def test_agreement_on_a_hand_built_world(app: Flask) -> None:
    """Every path to managing, and to not managing, so the property cannot be vacuous."""
    world = World(
        # u0 team owner, u1 team viewer, u2 admin, u3 disabled owner, u4 direct owner
        users=[(False, True), (False, True), (True, True), (False, False), (False, True)],
        teams=[{0: Role.OWNER, 1: Role.VIEWER, 3: Role.OWNER}],
        namespaces=[Visibility.PRIVATE, Visibility.PUBLIC],
        global_visibility=Visibility.PUBLIC,
        grants=[
            (0, "team", 0, Role.OWNER),
            (1, "user", 4, Role.OWNER),
            (1, "team", 0, Role.VIEWER),
        ],
    )
    session = app.appbuilder.session
    users = build(app, world)
    by_name = {u.username: principal_for(u, portus().admin_role) for u in users}
    check_agreement(app, [ANONYMOUS, *by_name.values()])

    def namespaces(principal: Principal) -> set[str]:
        return set(session.scalars(select(Namespace.name).where(managed_namespaces(principal))))

    def teams(principal: Principal) -> set[str]:
        return set(session.scalars(select(Team.name).where(managed_teams(principal))))

    assert namespaces(by_name["u0"]) == {"ns0", "u0"}  # a team owner through an owner grant
    assert namespaces(by_name["u1"]) == {"u1"}  # a team viewer: the grant gives viewer
    assert namespaces(by_name["u3"]) == set()  # disabled
    assert namespaces(by_name["u4"]) == {"ns1", "u4"}
    assert teams(by_name["u0"]) == {"team 0"}
    assert teams(by_name["u1"]) == set()
    assert teams(by_name["u2"]) == {"team 0"}
    # An admin's read-write token for every namespace still manages nothing.
    token = replace(by_name["u2"], kind=PrincipalKind.ACCESS_TOKEN, ceiling=Ceiling())
    assert namespaces(token) == teams(token) == set()
    check_agreement(app, [token])
