"""The rights table of issue 2, row by row, against the pure `decide` function."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from portus_fab.access.policy import (
    ALL_ACTIONS,
    ANONYMOUS,
    ROBOT_CEILING,
    Action,
    Ceiling,
    Decision,
    Manageable,
    NamespaceFacts,
    Principal,
    PrincipalKind,
    RoleSource,
    catalog_refusal,
    decide,
    decide_manage,
    effective_role,
    namespace_name_of,
    team_role,
)
from portus_fab.models import Role, Visibility

PULL, PUSH, DELETE = Action.PULL, Action.PUSH, Action.DELETE
NONE: frozenset[Action] = frozenset()
ALL = frozenset({PULL, PUSH, DELETE})

USER_KIND = PrincipalKind.USER
ADMIN = Principal(USER_KIND, user_id=1, username="root", is_admin=True)
USER = Principal(USER_KIND, user_id=2, username="alice")
DISABLED = Principal(USER_KIND, user_id=3, username="gone", active=False)
DISABLED_ADMIN = Principal(USER_KIND, user_id=4, username="oldroot", is_admin=True, active=False)

VISIBILITIES = list(Visibility)


def direct(role: Role) -> tuple[RoleSource, ...]:
    return (RoleSource(role, "user grant", role),)


def run(
    principal: Principal,
    visibility: Visibility | None,
    sources: tuple[RoleSource, ...] = (),
    *,
    delete_by_contributors: bool = False,
    repository: str = "team/app",
):
    facts = (
        None if visibility is None else NamespaceFacts(namespace_name_of(repository), visibility)
    )
    return decide(
        principal,
        repository,
        facts,
        sources,
        delete_by_contributors=delete_by_contributors,
        namespace_name=namespace_name_of(repository),
    )


def check_reasons(decisions: tuple[Decision, ...]) -> None:
    assert [d.action for d in decisions] == list(Action)
    for decision in decisions:
        assert isinstance(decision.reason, str)
        assert decision.reason.strip(), decision


# One row per line of the table, on every visibility.
TABLE = [
    # (who, principal, sources, delete_by_contributors, {visibility: allowed})
    ("admin", ADMIN, (), False, dict.fromkeys(VISIBILITIES, ALL)),
    (
        "admin with a viewer grant",
        ADMIN,
        direct(Role.VIEWER),
        False,
        dict.fromkeys(VISIBILITIES, ALL),
    ),
    ("owner", USER, direct(Role.OWNER), False, dict.fromkeys(VISIBILITIES, ALL)),
    (
        "contributor",
        USER,
        direct(Role.CONTRIBUTOR),
        False,
        dict.fromkeys(VISIBILITIES, frozenset({PULL, PUSH})),
    ),
    (
        "contributor, delete by contributors on",
        USER,
        direct(Role.CONTRIBUTOR),
        True,
        dict.fromkeys(VISIBILITIES, ALL),
    ),
    ("viewer", USER, direct(Role.VIEWER), False, dict.fromkeys(VISIBILITIES, frozenset({PULL}))),
    (
        "viewer, delete by contributors on",
        USER,
        direct(Role.VIEWER),
        True,
        dict.fromkeys(VISIBILITIES, frozenset({PULL})),
    ),
    (
        "logged in, no role",
        USER,
        (),
        False,
        {
            Visibility.PUBLIC: frozenset({PULL}),
            Visibility.PROTECTED: frozenset({PULL}),
            Visibility.PRIVATE: NONE,
        },
    ),
    (
        "logged in, no role, delete by contributors on",
        USER,
        (),
        True,
        {
            Visibility.PUBLIC: frozenset({PULL}),
            Visibility.PROTECTED: frozenset({PULL}),
            Visibility.PRIVATE: NONE,
        },
    ),
    (
        "anonymous",
        ANONYMOUS,
        (),
        False,
        {
            Visibility.PUBLIC: frozenset({PULL}),
            Visibility.PROTECTED: NONE,
            Visibility.PRIVATE: NONE,
        },
    ),
    ("disabled user", DISABLED, (), False, dict.fromkeys(VISIBILITIES, NONE)),
    ("disabled owner", DISABLED, direct(Role.OWNER), True, dict.fromkeys(VISIBILITIES, NONE)),
    ("disabled admin", DISABLED_ADMIN, (), False, dict.fromkeys(VISIBILITIES, NONE)),
]

CASES = [
    pytest.param(principal, sources, dbc, visibility, expected, id=f"{who}-{visibility}")
    for who, principal, sources, dbc, by_visibility in TABLE
    for visibility, expected in by_visibility.items()
]


@pytest.mark.parametrize(("principal", "sources", "dbc", "visibility", "expected"), CASES)
def test_rights_table(
    principal: Principal,
    sources: tuple[RoleSource, ...],
    dbc: bool,
    visibility: Visibility,
    expected: frozenset[Action],
) -> None:
    explanation = run(principal, visibility, sources, delete_by_contributors=dbc)
    assert explanation.allowed == expected
    check_reasons(explanation.decisions)
    denied = set(Action) - expected
    reasons = explanation.denial_reasons(Action)
    assert set(reasons) == denied
    assert all(reason.strip() for reason in reasons.values())


@pytest.mark.parametrize(
    ("repository", "namespace"),
    [("team/app", "team"), ("team/app/sub", "team"), ("busybox", "_global")],
)
def test_namespace_is_first_segment(repository: str, namespace: str) -> None:
    assert namespace_name_of(repository) == namespace
    explanation = run(USER, Visibility.PUBLIC, repository=repository)
    assert explanation.namespace_name == namespace
    assert explanation.allowed == {PULL}


@pytest.mark.parametrize(
    ("principal", "sources", "dbc"),
    [
        (ADMIN, (), False),
        (USER, direct(Role.OWNER), True),
        (USER, direct(Role.CONTRIBUTOR), True),
        (USER, direct(Role.VIEWER), False),
        (USER, (), False),
        (ANONYMOUS, (), False),
        (DISABLED, direct(Role.OWNER), False),
    ],
)
def test_missing_namespace_refuses_push_to_everyone(
    principal: Principal, sources: tuple[RoleSource, ...], dbc: bool
) -> None:
    explanation = run(principal, None, sources, delete_by_contributors=dbc, repository="nope/app")
    assert PUSH not in explanation.allowed
    assert explanation.namespace is None
    assert explanation.namespace_name == "nope"
    check_reasons(explanation.decisions)
    reason = explanation.denial_reasons([PUSH])[PUSH]
    if principal.active:
        assert "'nope' does not exist" in reason
    else:
        assert "disabled" in reason
    # Only an admin reads (or deletes) what may be left of it in the registry.
    expected = {PULL, DELETE} if principal.is_admin else NONE
    assert explanation.allowed == expected
    assert "(does not exist)" in explanation.lines()[0]


@pytest.mark.parametrize(
    ("grant", "member", "expected"),
    [
        (grant, member, min(grant, member, key=lambda r: r.rank))
        for grant, member in itertools.product(Role, Role)
    ],
)
def test_team_role_is_the_lower(grant: Role, member: Role, expected: Role) -> None:
    assert team_role(grant, member) == expected
    assert team_role(member, grant) == expected


def test_team_role_explicit_examples() -> None:
    assert team_role(Role.OWNER, Role.VIEWER) == Role.VIEWER
    assert team_role(Role.VIEWER, Role.OWNER) == Role.VIEWER
    assert team_role(Role.CONTRIBUTOR, Role.OWNER) == Role.CONTRIBUTOR
    assert team_role(Role.OWNER, Role.OWNER) == Role.OWNER


def team(grant: Role, member: Role, name: str = "devs") -> RoleSource:
    return RoleSource(team_role(grant, member), f"team {name}", grant, member)


@pytest.mark.parametrize(
    ("sources", "expected_role", "expected_rights"),
    [
        ((), None, NONE),
        ((team(Role.OWNER, Role.VIEWER),), Role.VIEWER, frozenset({PULL})),
        ((team(Role.VIEWER, Role.OWNER),), Role.VIEWER, frozenset({PULL})),
        ((team(Role.OWNER, Role.CONTRIBUTOR),), Role.CONTRIBUTOR, frozenset({PULL, PUSH})),
        (
            (team(Role.OWNER, Role.VIEWER, "a"), team(Role.CONTRIBUTOR, Role.OWNER, "b")),
            Role.CONTRIBUTOR,
            frozenset({PULL, PUSH}),
        ),
        (
            (*direct(Role.VIEWER), team(Role.OWNER, Role.OWNER)),
            Role.OWNER,
            ALL,
        ),
        (
            (team(Role.CONTRIBUTOR, Role.CONTRIBUTOR), *direct(Role.OWNER)),
            Role.OWNER,
            ALL,
        ),
        (
            (*direct(Role.VIEWER), team(Role.CONTRIBUTOR, Role.VIEWER)),
            Role.VIEWER,
            frozenset({PULL}),
        ),
    ],
)
def test_effective_role_is_the_highest(
    sources: tuple[RoleSource, ...], expected_role: Role | None, expected_rights: frozenset
) -> None:
    assert effective_role(sources) == expected_role
    explanation = run(USER, Visibility.PRIVATE, sources)
    assert explanation.role == expected_role
    assert explanation.allowed == expected_rights
    assert explanation.sources == sources
    check_reasons(explanation.decisions)


def test_all_actions_constant() -> None:
    assert frozenset(Action) == ALL_ACTIONS == ALL


@pytest.mark.parametrize(
    ("principal", "sources", "visibility", "action", "fragment"),
    [
        (ANONYMOUS, (), Visibility.PRIVATE, PULL, "log in"),
        (ANONYMOUS, (), Visibility.PROTECTED, PULL, "log in"),
        (ANONYMOUS, (), Visibility.PUBLIC, PUSH, "anonymous users may only pull"),
        (USER, (), Visibility.PRIVATE, PULL, "no role"),
        (USER, (), Visibility.PUBLIC, PUSH, "no role on namespace 'team'"),
        (USER, direct(Role.VIEWER), Visibility.PRIVATE, PUSH, "contributor or owner"),
        (USER, direct(Role.CONTRIBUTOR), Visibility.PRIVATE, DELETE, "owner"),
        (DISABLED, direct(Role.OWNER), Visibility.PUBLIC, PULL, "disabled"),
    ],
)
def test_denial_reasons_say_why(
    principal: Principal,
    sources: tuple[RoleSource, ...],
    visibility: Visibility,
    action: Action,
    fragment: str,
) -> None:
    reasons = run(principal, visibility, sources).denial_reasons([action])
    assert fragment in reasons[action]


def test_explanation_lines_name_role_and_sources() -> None:
    sources = (team(Role.OWNER, Role.CONTRIBUTOR), *direct(Role.VIEWER))
    lines = run(USER, Visibility.PRIVATE, sources).lines()
    assert lines[0] == "alice on team/app: namespace team (private)"
    assert "effective role: contributor" in lines
    assert any("team devs" in line and "member as contributor" in line for line in lines)
    assert any(line.startswith("push: allowed") for line in lines)
    assert any(line.startswith("delete: denied") for line in lines)


# --- ceilings: what a credential may do, whatever its owner may -----------------------------------

TOKEN_KIND = PrincipalKind.ACCESS_TOKEN


def capped(
    principal: Principal,
    actions: frozenset[Action] = ALL,
    namespaces: frozenset[str] | None = None,
) -> Principal:
    return replace(principal, kind=TOKEN_KIND, ceiling=Ceiling(actions, namespaces))


READ_ONLY = frozenset({PULL})

# (who, principal, sources, delete_by_contributors, {visibility: allowed}, denial fragment)
CEILING_TABLE = [
    (
        "owner, read-only",
        capped(USER, READ_ONLY),
        direct(Role.OWNER),
        False,
        dict.fromkeys(VISIBILITIES, READ_ONLY),
        "may only pull",
    ),
    (
        "admin, read-only",
        capped(ADMIN, READ_ONLY),
        (),
        False,
        dict.fromkeys(VISIBILITIES, READ_ONLY),
        "may only pull",
    ),
    (
        "admin, pull and push",
        capped(ADMIN, frozenset({PULL, PUSH})),
        (),
        False,
        dict.fromkeys(VISIBILITIES, frozenset({PULL, PUSH})),
        "may only pull, push",
    ),
    (
        "contributor, delete by contributors on, no delete",
        capped(USER, frozenset({PULL, PUSH})),
        direct(Role.CONTRIBUTOR),
        True,
        dict.fromkeys(VISIBILITIES, frozenset({PULL, PUSH})),
        "may only pull, push",
    ),
    (
        "owner, nothing",
        capped(USER, NONE),
        direct(Role.OWNER),
        False,
        dict.fromkeys(VISIBILITIES, NONE),
        "may do nothing",
    ),
    (
        "owner, limited to this namespace",
        capped(USER, namespaces=frozenset({"team"})),
        direct(Role.OWNER),
        False,
        dict.fromkeys(VISIBILITIES, ALL),
        "",
    ),
    (
        "owner, limited to another namespace",
        capped(USER, namespaces=frozenset({"other"})),
        direct(Role.OWNER),
        False,
        dict.fromkeys(VISIBILITIES, NONE),
        "limited to other",
    ),
    (
        "admin, limited to no namespace",
        capped(ADMIN, namespaces=frozenset()),
        (),
        False,
        dict.fromkeys(VISIBILITIES, NONE),
        "limited to no namespace",
    ),
    # A ceiling never adds a right.
    (
        "viewer, every action",
        capped(USER),
        direct(Role.VIEWER),
        False,
        dict.fromkeys(VISIBILITIES, READ_ONLY),
        "role viewer may not",
    ),
    (
        "no role, read-only",
        capped(USER, READ_ONLY),
        (),
        False,
        {Visibility.PUBLIC: READ_ONLY, Visibility.PROTECTED: READ_ONLY, Visibility.PRIVATE: NONE},
        "",
    ),
    (
        "disabled owner, read-only",
        capped(DISABLED, READ_ONLY),
        direct(Role.OWNER),
        False,
        dict.fromkeys(VISIBILITIES, NONE),
        "disabled",
    ),
]

CEILING_CASES = [
    pytest.param(principal, sources, dbc, visibility, expected, fragment, id=f"{who}-{visibility}")
    for who, principal, sources, dbc, by_visibility, fragment in CEILING_TABLE
    for visibility, expected in by_visibility.items()
]


@pytest.mark.parametrize(
    ("principal", "sources", "dbc", "visibility", "expected", "fragment"), CEILING_CASES
)
def test_ceiling_table(
    principal: Principal,
    sources: tuple[RoleSource, ...],
    dbc: bool,
    visibility: Visibility,
    expected: frozenset[Action],
    fragment: str,
) -> None:
    explanation = run(principal, visibility, sources, delete_by_contributors=dbc)
    assert explanation.allowed == expected
    check_reasons(explanation.decisions)
    reasons = explanation.denial_reasons(Action)
    assert set(reasons) == set(Action) - expected
    # The ceiling says why it refused (the owner's own refusals keep theirs).
    if fragment and visibility == Visibility.PRIVATE:
        assert all(fragment in reason for reason in reasons.values()), reasons


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (capped(ADMIN, READ_ONLY), {PULL}),
        (capped(ADMIN, frozenset({PUSH})), NONE),
        (capped(ADMIN, namespaces=frozenset({"nope"})), {PULL, DELETE}),
        (capped(ADMIN, namespaces=frozenset({"team"})), NONE),
    ],
)
def test_ceiling_on_a_missing_namespace(principal: Principal, expected: frozenset) -> None:
    explanation = run(principal, None, repository="nope/app")
    assert explanation.allowed == expected
    check_reasons(explanation.decisions)


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (ADMIN, True),
        (capped(ADMIN, READ_ONLY), True),
        (capped(ADMIN, frozenset({PUSH})), False),
        (capped(ADMIN, namespaces=frozenset({"team"})), False),
        (USER, False),
        (ANONYMOUS, False),
        (DISABLED_ADMIN, False),
    ],
)
def test_catalog_needs_an_admin_who_may_pull_everywhere(
    principal: Principal, allowed: bool
) -> None:
    refusal = catalog_refusal(principal)
    assert (refusal is None) == allowed
    assert allowed or refusal


def test_principal_kinds_and_names() -> None:
    assert ANONYMOUS.kind == PrincipalKind.ANONYMOUS and ANONYMOUS.is_anonymous
    assert str(ANONYMOUS) == "anonymous"
    assert str(USER) == "alice" and str(ADMIN) == "root (admin)"
    assert str(capped(USER, READ_ONLY)) == "alice (access token)"
    assert not capped(USER).is_anonymous


# --- managing a namespace or a team ---------------------------------------------------------------

READ_ONLY = Ceiling(actions=frozenset({PULL}))
MANAGE_TABLE = [
    # (who, principal, role on the namespace / in the team, may manage)
    ("admin", ADMIN, None, True),
    ("admin who is a viewer", ADMIN, Role.VIEWER, True),
    ("owner", USER, Role.OWNER, True),
    ("contributor", USER, Role.CONTRIBUTOR, False),
    ("viewer", USER, Role.VIEWER, False),
    ("no role", USER, None, False),
    ("anonymous", ANONYMOUS, None, False),
    ("disabled owner", DISABLED, Role.OWNER, False),
    ("disabled admin", DISABLED_ADMIN, None, False),
    # A ceiling limits what a credential does to images; managing gives rights to others.
    ("owner's read-only token", replace(USER, ceiling=READ_ONLY), Role.OWNER, False),
    ("admin's unlimited token", replace(ADMIN, ceiling=Ceiling()), None, False),
    (
        "admin's token for this namespace",
        replace(ADMIN, ceiling=Ceiling(namespaces=frozenset({"team"}))),
        Role.OWNER,
        False,
    ),
]


@pytest.mark.parametrize("what", list(Manageable))
@pytest.mark.parametrize(
    ("principal", "role", "allowed"),
    [row[1:] for row in MANAGE_TABLE],
    ids=[row[0] for row in MANAGE_TABLE],
)
def test_manage_table(
    what: Manageable, principal: Principal, role: Role | None, allowed: bool
) -> None:
    decision = decide_manage(principal, what, role)
    assert (decision.what, decision.allowed) == (what, allowed)
    assert decision.reason.strip()


def test_manage_refusals_say_why() -> None:
    team = Manageable.TEAM
    assert decide_manage(USER, team, Role.VIEWER).reason == (
        "role viewer may not manage the team: needs owner"
    )
    assert decide_manage(USER, team, None).reason == "no role on the team: its owners manage it"
    assert decide_manage(ANONYMOUS, team, None).reason == "log in to manage a team"
    assert decide_manage(DISABLED, team, Role.OWNER).reason == "the account is disabled"
    token = replace(USER, kind=PrincipalKind.ACCESS_TOKEN, ceiling=READ_ONLY)
    assert (
        decide_manage(token, team, Role.OWNER).reason == "this access token may not manage a team"
    )


# --- robots: the roles their robot grants give, capped at contributor; never delete or manage ---

ROBOT = Principal(PrincipalKind.ROBOT, username="ci+bot", robot_id=7, ceiling=ROBOT_CEILING)


def robot_grant(role: Role) -> tuple[RoleSource, ...]:
    return (RoleSource(role, "robot grant", role),)


ROBOT_TABLE = [
    # (visibility or None: no such namespace, robot grant role, contributors may delete, allowed)
    (Visibility.PRIVATE, None, False, NONE),
    (Visibility.PROTECTED, None, False, NONE),  # "any logged-in user": a robot is not a user
    (Visibility.PUBLIC, None, False, {PULL}),
    (Visibility.PRIVATE, Role.VIEWER, False, {PULL}),
    (Visibility.PROTECTED, Role.VIEWER, False, {PULL}),
    (Visibility.PRIVATE, Role.CONTRIBUTOR, False, {PULL, PUSH}),
    (Visibility.PRIVATE, Role.CONTRIBUTOR, True, {PULL, PUSH}),
    # A CHECK keeps owner out of robot grants; were one there, it still gives contributor.
    (Visibility.PRIVATE, Role.OWNER, True, {PULL, PUSH}),
    (Visibility.PUBLIC, Role.OWNER, False, {PULL, PUSH}),
    (None, Role.CONTRIBUTOR, False, NONE),
]


@pytest.mark.parametrize(("visibility", "role", "contributors_delete", "allowed"), ROBOT_TABLE)
def test_robot_rights(
    visibility: Visibility | None,
    role: Role | None,
    contributors_delete: bool,
    allowed: frozenset[Action],
) -> None:
    sources = robot_grant(role) if role is not None else ()
    explanation = run(ROBOT, visibility, sources, delete_by_contributors=contributors_delete)
    assert explanation.allowed == allowed
    check_reasons(explanation.decisions)
    if role is not None and visibility is not None:
        assert explanation.role == (Role.VIEWER if role == Role.VIEWER else Role.CONTRIBUTOR)


def test_robot_refusals_say_why() -> None:
    refused = run(ROBOT, Visibility.PROTECTED).denial_reasons(list(Action))
    assert refused[PULL] == "a robot needs a grant on team"
    assert refused[DELETE] == "this robot may only pull, push"
    assert catalog_refusal(ROBOT) is not None


@pytest.mark.parametrize("what", list(Manageable))
@pytest.mark.parametrize("role", [None, *Role])
def test_robots_never_manage(what: Manageable, role: Role | None) -> None:
    assert not decide_manage(ROBOT, what, role).allowed
