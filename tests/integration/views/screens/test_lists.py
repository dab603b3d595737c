"""FAB's CRUD list screens show each role only the rows it may see; the event and activity
logs are for admins; anonymous visitors get no CRUD screen."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portus_fab.models.activity import Activity, RegistryEventRecord
from tests.support.screens import (
    ADMIN,
    ALL_REPOSITORIES,
    ANONYMOUS,
    CONTRIBUTOR,
    DEVAPP,
    INSIDEIMG,
    LOGGED_IN,
    OPENIMG,
    OPS_OWNER,
    OPSVAULT,
    OTHER,
    OWNER,
    VIEWER,
    VISIBLE,
    World,
    body_of,
    is_login_redirect,
    record_count,
    refused,
)

TEAM_NAMESPACES = ("devteam", "opsonly", "openhouse", "insiders")
PERSONAL = (OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER, ADMIN)

# (list URL, user) -> names that must appear, names that must not, expected record count.
# Namespace list: the namespaces the user manages (owner role); team list: teams they own.
LIST_CASES = [
    ("/namespaceview/list/", ADMIN, [*TEAM_NAMESPACES, *PERSONAL], [], 4 + 6 + 1),
    ("/namespaceview/list/", OWNER, ["devteam", OWNER], ["opsonly", "openhouse", CONTRIBUTOR], 2),
    ("/namespaceview/list/", CONTRIBUTOR, [CONTRIBUTOR], ["devteam", "opsonly", OWNER], 1),
    ("/namespaceview/list/", VIEWER, [VIEWER], ["devteam", "opsonly", OWNER], 1),
    ("/namespaceview/list/", OTHER, [OTHER], ["devteam", "opsonly", "insiders", OWNER], 1),
    ("/teamview/list/", ADMIN, ["devcrew", "opscrew"], [], 2),
    ("/teamview/list/", OWNER, ["devcrew"], ["opscrew"], 1),
    ("/teamview/list/", CONTRIBUTOR, [], ["devcrew", "opscrew"], 0),
    ("/teamview/list/", OTHER, [], ["devcrew", "opscrew"], 0),
    ("/teammemberview/list/", ADMIN, ["devcrew", "opscrew"], [], 4),
    ("/teammemberview/list/", OWNER, ["devcrew"], ["opscrew"], 3),
    ("/teammemberview/list/", VIEWER, [], ["devcrew", "opscrew"], 0),
    ("/teammemberview/list/", OTHER, [], ["devcrew", "opscrew"], 0),
    # Grants: 6 personal owner grants + devcrew on devteam + opscrew on opsonly.
    ("/grantview/list/", ADMIN, ["devteam", "opsonly"], [], 8),
    ("/grantview/list/", OWNER, ["devteam", "devcrew"], ["opsonly"], 2),
    ("/grantview/list/", CONTRIBUTOR, [], ["devteam", "opsonly"], 1),
    ("/grantview/list/", OTHER, [], ["devteam", "opsonly"], 1),
    *[
        ("/repositoryview/list/", user, sorted(VISIBLE[user]), sorted(hidden), len(VISIBLE[user]))
        for user in LOGGED_IN
        for hidden in [set(ALL_REPOSITORIES) - VISIBLE[user]]
    ],
    *[
        ("/tagview/list/", user, sorted(VISIBLE[user]), sorted(hidden), len(VISIBLE[user]) + 1)
        for user in (ADMIN, OWNER, VIEWER)
        for hidden in [set(ALL_REPOSITORIES) - VISIBLE[user]]
    ],
    ("/tagview/list/", OTHER, [OPENIMG, INSIDEIMG], [DEVAPP, OPSVAULT, "devteam", "opsonly"], 3),
    ("/repositoryview/list/", OTHER, [], ["devteam", "opsonly"], 3),
]


@pytest.mark.parametrize(
    ("url", "username", "present", "absent", "count"),
    LIST_CASES,
    ids=[f"{url.split('/')[1]}-{user}" for url, user, *_ in LIST_CASES],
)
def test_list_screens_show_only_permitted_rows(
    world: World, url: str, username: str, present: list[str], absent: list[str], count: int
) -> None:
    response = world.client(username).get(url)
    assert response.status_code == 200
    body = body_of(response)
    assert record_count(response) == count
    for name in present:
        assert name in body, name
    # Hidden names appear nowhere: not in rows, nor in the search form's choices.
    for name in absent:
        assert name not in body, name


def test_list_search_does_not_widen_the_rows(world: World) -> None:
    """A guessed filter value (a hidden namespace's id) finds nothing."""
    other = world.client(OTHER)
    hidden = world.namespace_id("devteam")
    response = other.get(f"/repositoryview/list/?_flt_0_namespace={hidden}")
    assert response.status_code == 200
    assert record_count(response) == 0
    assert DEVAPP not in body_of(response)
    response = other.get("/tagview/list/?_flt_2_name=latest")
    assert record_count(response) == len(VISIBLE[OTHER])
    assert DEVAPP not in body_of(response)


def test_event_and_activity_logs_are_for_admins(world: World) -> None:
    session = world.app.appbuilder.session
    session.add(
        RegistryEventRecord(
            event_id="ev-1",
            action="push",
            repository="nosuchns/thing",
            tag="latest",
            status="rejected",
            reason="namespace 'nosuchns' does not exist",
        )
    )
    session.commit()
    admin = world.client(ADMIN)
    response = admin.get("/registryeventview/list/")
    assert response.status_code == 200
    assert "nosuchns/thing" in body_of(response)
    assert "rejected" in body_of(response)
    response = admin.get("/activityview/list/")
    assert response.status_code == 200
    # The pushes, and the audit records of the namespaces, teams, members and grants made.
    pushes = session.scalar(select(func.count(Activity.id)).where(Activity.kind == "push"))
    assert pushes == len(ALL_REPOSITORIES) + 1
    assert record_count(response) == session.scalar(select(func.count(Activity.id)))
    assert OPSVAULT in body_of(response)
    for username in (OWNER, CONTRIBUTOR, VIEWER, OTHER, ANONYMOUS):
        client = world.client(username)
        for url in ("/registryeventview/list/", "/activityview/list/"):
            response = client.get(url)
            assert refused(response), (username, url, response.status_code)
            assert "nosuchns" not in body_of(response)
            assert OPSVAULT not in body_of(response)


@pytest.mark.parametrize(
    "url",
    [
        "/namespaceview/list/",
        "/teamview/list/",
        "/teammemberview/list/",
        "/teammemberview/add",
        "/grantview/list/",
        "/grantview/add",
        "/repositoryview/list/",
        "/tagview/list/",
        "/activityview/list/",
        "/registryeventview/list/",
    ],
)
def test_anonymous_gets_no_crud_screen(world: World, url: str) -> None:
    response = world.client(ANONYMOUS).get(url)
    assert is_login_redirect(response), response.status_code
