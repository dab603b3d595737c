"""'May pull' (Policy.explain) and 'may see' (Policy.visible_namespaces) agree on any data.

Every generated example builds its users, teams, namespaces and grants inside one transaction
of the test's app and rolls it back at the end, so examples never see each other's data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flask import Flask
from flask_appbuilder.security.sqla.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.access.policy import (
    ANONYMOUS,
    Action,
    Ceiling,
    Policy,
    Principal,
    PrincipalKind,
)
from portus_fab.auth.credentials import principal_for
from portus_fab.core import portus
from portus_fab.models import GLOBAL_NAMESPACE, Namespace, Role, Visibility
from tests.conftest import USER_ROLE

ROLES = st.sampled_from(list(Role))
VISIBILITIES = st.sampled_from(list(Visibility))
# Ceilings a credential may carry: some actions, maybe only some namespaces (existing or not).
CEILINGS = st.builds(
    Ceiling,
    actions=st.frozensets(st.sampled_from(list(Action))),
    namespaces=st.none()
    | st.frozensets(st.sampled_from(["ns0", "ns1", "ns2", GLOBAL_NAMESPACE, "u0", "nowhere"])),
)


@dataclass(frozen=True)
class World:
    users: list[tuple[bool, bool]]  # (admin, active)
    teams: list[dict[int, Role]]  # member user index -> role in the team
    namespaces: list[Visibility]
    global_visibility: Visibility
    grants: list[tuple[int | str, str, int, Role]]  # (namespace idx or name, kind, idx, role)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    users = draw(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=5))
    user_ids = st.integers(0, len(users) - 1)
    teams = draw(st.lists(st.dictionaries(user_ids, ROLES, max_size=len(users)), max_size=3))
    namespaces = draw(st.lists(VISIBILITIES, min_size=1, max_size=4))
    global_visibility = draw(st.sampled_from([Visibility.PUBLIC, Visibility.PROTECTED]))
    # Grants on team namespaces, and on personal namespaces (by username) and the global one.
    targets = st.one_of(
        st.integers(0, len(namespaces) - 1),
        st.sampled_from([GLOBAL_NAMESPACE, *(f"u{i}" for i in range(len(users)))]),
    )
    principals = [st.tuples(st.just("user"), user_ids)]
    if teams:
        principals.append(st.tuples(st.just("team"), st.integers(0, len(teams) - 1)))
    grants = draw(
        st.lists(
            st.tuples(targets, st.one_of(principals), ROLES).map(
                lambda t: (t[0], t[1][0], t[1][1], t[2])
            ),
            max_size=8,
        )
    )
    return World(users, teams, namespaces, global_visibility, grants)


def build(app: Flask, world: World) -> list[User]:
    session = app.appbuilder.session
    sm = app.appbuilder.sm
    admin_role, user_role = sm.find_role(sm.auth_role_admin), sm.find_role(USER_ROLE)
    users = []
    for i, (admin, active) in enumerate(world.users):
        user = User(
            first_name=f"u{i}",
            last_name="Test",
            username=f"u{i}",
            email=f"u{i}@example.test",
            active=active,
            roles=[admin_role if admin else user_role],
        )
        session.add(user)
        users.append(user)
    session.flush()  # the hooks create the personal namespaces u0, u1, ...
    teams = []
    for t, members in enumerate(world.teams):
        team = management.create_team(session, f"team {t}")
        for index, role in members.items():
            management.add_member(session, team, users[index], role)
        teams.append(team)
    for n, visibility in enumerate(world.namespaces):
        management.create_namespace(session, f"ns{n}", visibility=visibility)
    management.set_visibility(session, GLOBAL_NAMESPACE, world.global_visibility)
    for target, kind, index, role in world.grants:
        name = f"ns{target}" if isinstance(target, int) else target
        namespace = management.find_namespace(session, name)
        if kind == "user":
            management.set_grant(session, namespace, role, user=users[index])
        else:
            management.set_grant(session, namespace, role, team=teams[index])
    session.flush()
    return users


def repository_in(namespace: str) -> str:
    return "app" if namespace == GLOBAL_NAMESPACE else f"{namespace}/app"


def check_agreement(app: Flask, principals: list[Principal]) -> None:
    session = app.appbuilder.session
    policy = portus().policy()
    names = list(session.scalars(select(Namespace.name)))
    assert GLOBAL_NAMESPACE in names
    for principal in principals:
        visible = set(
            session.scalars(select(Namespace.name).where(Policy.visible_namespaces(principal)))
        )
        may_pull = {
            name
            for name in names
            if Action.PULL in policy.explain(principal, repository_in(name)).allowed
        }
        assert may_pull == visible, principal


@settings(
    max_examples=30,
    deadline=None,
    database=None,  # write nothing into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), ceilings=st.lists(CEILINGS, max_size=3))
def test_may_pull_agrees_with_may_see(app: Flask, world: World, ceilings: list[Ceiling]) -> None:
    session = app.appbuilder.session
    try:
        users = build(app, world)
        admin_role = portus().admin_role
        principals = [ANONYMOUS, *(principal_for(user, admin_role) for user in users)]
        assert [p.is_admin for p in principals[1:]] == [admin for admin, _ in world.users]
        # The same users through credentials with a ceiling (an access token, say).
        capped = [
            replace(principal, kind=PrincipalKind.ACCESS_TOKEN, ceiling=ceiling)
            for principal in principals[1:]
            for ceiling in ceilings
        ]
        check_agreement(app, [*principals, *capped])
    finally:
        session.rollback()


def test_agreement_on_a_hand_built_world(app: Flask) -> None:
    """The same check on one world with every kind of path to a role, so a broken generator
    cannot make the property vacuous."""
    world = World(
        users=[(False, True), (False, True), (True, True), (False, False), (False, True)],
        teams=[{0: Role.OWNER, 1: Role.VIEWER}, {4: Role.CONTRIBUTOR}],
        namespaces=[
            Visibility.PRIVATE,
            Visibility.PROTECTED,
            Visibility.PUBLIC,
            Visibility.PRIVATE,
        ],
        global_visibility=Visibility.PROTECTED,
        grants=[
            (0, "team", 0, Role.VIEWER),
            (3, "user", 1, Role.CONTRIBUTOR),
            ("u0", "team", 1, Role.VIEWER),
            (0, "user", 3, Role.OWNER),
        ],
    )
    session = app.appbuilder.session
    users = build(app, world)
    principals = {u.username: principal_for(u, portus().admin_role) for u in users}
    check_agreement(app, [ANONYMOUS, *principals.values()])

    def visible(principal: Principal) -> set[str]:
        query = select(Namespace.name).where(Policy.visible_namespaces(principal))
        return set(session.scalars(query))

    all_names = set(session.scalars(select(Namespace.name)))
    assert visible(ANONYMOUS) == {"ns2"}
    assert visible(principals["u0"]) == {"ns0", "ns1", "ns2", GLOBAL_NAMESPACE, "u0"}
    assert visible(principals["u1"]) == {"ns0", "ns1", "ns2", "ns3", GLOBAL_NAMESPACE, "u1"}
    assert visible(principals["u2"]) == all_names
    assert visible(principals["u3"]) == set()  # disabled, despite owning ns0
    assert visible(principals["u4"]) == {"ns1", "ns2", GLOBAL_NAMESPACE, "u4", "u0"}

    def token(principal: Principal, ceiling: Ceiling) -> Principal:
        return replace(principal, kind=PrincipalKind.ACCESS_TOKEN, ceiling=ceiling)

    admin_for_ns0 = token(principals["u2"], Ceiling(namespaces=frozenset({"ns0", "nowhere"})))
    push_only = token(principals["u0"], Ceiling(actions=frozenset({Action.PUSH})))
    u0_read_only = token(principals["u0"], Ceiling(actions=frozenset({Action.PULL})))
    assert visible(admin_for_ns0) == {"ns0"}
    assert visible(push_only) == set()
    assert visible(u0_read_only) == visible(principals["u0"])
    check_agreement(app, [admin_for_ns0, push_only, u0_read_only])
    session.rollback()
