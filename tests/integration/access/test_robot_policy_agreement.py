"""For robots too, 'may pull' (Policy.explain) and 'may see' (Policy.visible_namespaces) agree on
any data, and the screens' rows (managed_robots) are the robots whose namespace the principal
may manage (decide_manage). Each example rolls back its data."""

from __future__ import annotations

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL, Policy, managed_robots
from portus_fab.auth import robots
from portus_fab.auth.credentials import principal_for
from portus_fab.core import portus
from portus_fab.models import Robot, Role, Visibility
from tests.conftest import add_user
from tests.integration.access.test_policy_agreement import check_agreement

VISIBILITIES = st.sampled_from(list(Visibility))
ROBOT_ROLES = st.sampled_from([Role.VIEWER, Role.CONTRIBUTOR])


@st.composite
def robot_worlds(draw: st.DrawFn) -> tuple[list[Visibility], list[tuple[int, str]], list[tuple]]:
    namespaces = draw(st.lists(VISIBILITIES, min_size=1, max_size=4))
    namespace_ids = st.integers(0, len(namespaces) - 1)
    bots = draw(st.lists(st.tuples(namespace_ids, st.sampled_from(["read", "write"])), max_size=3))
    grants = []
    if bots:
        grants = draw(
            st.lists(
                st.tuples(st.integers(0, len(bots) - 1), namespace_ids, ROBOT_ROLES), max_size=6
            )
        )
    return namespaces, bots, grants


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=robot_worlds())
def test_robot_may_pull_agrees_with_may_see(app: Flask, world: tuple) -> None:
    namespaces, bots, grants = world
    session = app.appbuilder.session
    hasher = portus().authentication.hasher
    try:
        made = [
            management.create_namespace(session, f"ns{n}", visibility=visibility)
            for n, visibility in enumerate(namespaces)
        ]
        robot_rows = [
            robots.create_robot(session, hasher, INTERNAL, f"ns{n}", f"bot{i}", access).robot
            for i, (n, access) in enumerate(bots)
        ]
        for robot_index, n, role in grants:
            robots.set_robot_grant(session, INTERNAL, made[n], robot_rows[robot_index], role)
        session.flush()
        check_agreement(app, [robots.robot_principal(robot) for robot in robot_rows])
    finally:
        session.rollback()


def test_robot_rows_are_those_of_namespaces_the_principal_manages(app: Flask) -> None:
    session = app.appbuilder.session
    hasher = portus().authentication.hasher
    admin = add_user(app, "root", admin=True)
    owner, viewer, outsider = add_user(app, "olga"), add_user(app, "vic"), add_user(app, "carl")
    for name in ("ci", "prod"):
        management.create_namespace(session, name)
    management.set_grant(session, management.find_namespace(session, "ci"), "owner", user=owner)
    management.set_grant(session, management.find_namespace(session, "ci"), "viewer", user=viewer)
    for name in ("ci", "prod"):
        robots.create_robot(session, hasher, INTERNAL, name, "bot", "write")
    session.commit()
    policy = Policy(session)
    every = list(session.scalars(select(Robot)))
    for user in (admin, owner, viewer, outsider):
        principal = principal_for(user, portus().admin_role)
        rows = set(session.scalars(select(Robot.id).where(managed_robots(principal))))
        decided = {
            robot.id
            for robot in every
            if policy.manage_namespace(principal, robot.namespace_id).allowed
        }
        assert rows == decided, user.username
    assert (
        len(
            set(
                session.scalars(
                    select(Robot.id).where(
                        managed_robots(principal_for(owner, portus().admin_role))
                    )
                )
            )
        )
        == 1
    )
    # A robot manages nothing, itself included.
    for robot in every:
        assert not set(
            session.scalars(select(Robot.id).where(managed_robots(robots.robot_principal(robot))))
        )
