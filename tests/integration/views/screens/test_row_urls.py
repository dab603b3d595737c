"""Direct URLs to one row of a CRUD screen: a row the user may not see is 404 (or refused) on
every action, and posting to it changes nothing."""

from __future__ import annotations

import pytest

from portus_fab.models import Grant, Namespace, TeamMember, Visibility
from tests.support.screens import (
    ADMIN,
    ANONYMOUS,
    CONTRIBUTOR,
    DEVAPP,
    OPS_OWNER,
    OPSVAULT,
    OTHER,
    OWNER,
    VIEWER,
    World,
    body_of,
    fresh,
    is_login_redirect,
    refused,
)


def row_urls(world: World) -> dict[str, tuple[str, str]]:
    """A key per row: (URL path without the action, a text only that row shows)."""
    return {
        "ns-devteam": (f"namespaceview/{{}}/{world.namespace_id('devteam')}", "devteam images"),
        "ns-opsonly": (f"namespaceview/{{}}/{world.namespace_id('opsonly')}", "opsonly images"),
        "ns-carl": (
            f"namespaceview/{{}}/{world.namespace_id(CONTRIBUTOR)}",
            f"Personal namespace of {CONTRIBUTOR}",
        ),
        "team-devcrew": (f"teamview/{{}}/{world.team_id('devcrew')}", "the developers"),
        "team-opscrew": (f"teamview/{{}}/{world.team_id('opscrew')}", "operations"),
        "member-otto": (
            f"teammemberview/{{}}/{world.member_id('opscrew', OPS_OWNER)}",
            "opscrew",
        ),
        "member-carl": (
            f"teammemberview/{{}}/{world.member_id('devcrew', CONTRIBUTOR)}",
            "devcrew",
        ),
        "grant-opsonly": (
            f"grantview/{{}}/{world.id_of(Grant, namespace_id=world.namespace_id('opsonly'))}",
            "opsonly",
        ),
        "grant-devteam": (
            f"grantview/{{}}/{world.id_of(Grant, namespace_id=world.namespace_id('devteam'))}",
            "devteam",
        ),
        "repo-devapp": (f"repositoryview/{{}}/{world.repository_id(DEVAPP)}", DEVAPP),
        "repo-opsvault": (f"repositoryview/{{}}/{world.repository_id(OPSVAULT)}", OPSVAULT),
        "tag-devapp": (f"tagview/{{}}/{world.tag_id(DEVAPP, 'latest')}", DEVAPP),
        "tag-opsvault": (f"tagview/{{}}/{world.tag_id(OPSVAULT, 'latest')}", OPSVAULT),
    }


EDITABLE = ("ns-", "member-", "grant-", "repo-")  # views with an edit route for users

# user -> (rows they may open, rows hidden from them)
ROW_ACCESS = {
    ADMIN: (
        ["ns-devteam", "ns-opsonly", "ns-carl", "team-opscrew", "member-otto", "grant-opsonly"]
        + ["repo-opsvault", "tag-opsvault"],
        [],
    ),
    OWNER: (
        ["ns-devteam", "team-devcrew", "member-carl", "grant-devteam", "repo-devapp"]
        + ["tag-devapp"],
        ["ns-opsonly", "ns-carl", "team-opscrew", "member-otto", "grant-opsonly"]
        + ["repo-opsvault", "tag-opsvault"],
    ),
    CONTRIBUTOR: (
        ["ns-carl", "repo-devapp", "tag-devapp"],
        ["ns-devteam", "ns-opsonly", "team-devcrew", "member-carl", "grant-devteam"]
        + ["repo-opsvault", "tag-opsvault"],
    ),
    VIEWER: (
        ["repo-devapp", "tag-devapp"],
        ["ns-devteam", "ns-carl", "team-devcrew", "member-carl", "grant-devteam"]
        + ["repo-opsvault", "tag-opsvault"],
    ),
    OTHER: (
        [],
        ["ns-devteam", "ns-opsonly", "ns-carl", "team-devcrew", "team-opscrew", "member-carl"]
        + ["member-otto", "grant-devteam", "grant-opsonly", "repo-devapp", "repo-opsvault"]
        + ["tag-devapp", "tag-opsvault"],
    ),
}


@pytest.mark.parametrize("username", list(ROW_ACCESS))
def test_direct_urls_to_rows(world: World, username: str) -> None:
    rows = row_urls(world)
    client = world.client(username)
    may_open, hidden = ROW_ACCESS[username]
    for key in may_open:
        path, marker = rows[key]
        response = client.get("/" + path.format("show"))
        assert response.status_code == 200, (key, response.status_code)
        assert marker in body_of(response), key
    for key in hidden:
        path, marker = rows[key]
        actions = ["show", "edit", "delete"] if key.startswith(EDITABLE) else ["show"]
        for action in actions:
            # A delete is a POST (FAB refuses a GET delete before looking at the row).
            send = client.post if action == "delete" else client.get
            response = send("/" + path.format(action))
            # 404 for a row the policy filters out; a refusal for a route the role lacks
            # (delete of namespaces and repositories).
            assert response.status_code == 404 or refused(response), (key, action)
            assert marker not in body_of(response), (key, action)


def test_anonymous_direct_urls_go_to_login(world: World) -> None:
    client = world.client(ANONYMOUS)
    for key, (path, marker) in row_urls(world).items():
        response = client.get("/" + path.format("show"))
        assert is_login_redirect(response), key
        assert marker not in body_of(response)


def test_posting_to_a_hidden_row_changes_nothing(world: World) -> None:
    devteam = world.namespace_id("devteam")
    member = world.member_id("devcrew", OWNER)
    grant = world.id_of(Grant, namespace_id=devteam)
    other = world.client(OTHER)
    response = other.post(
        f"/namespaceview/edit/{devteam}", data={"visibility": "public", "description": "mine"}
    )
    assert response.status_code == 404
    response = other.post(
        f"/teammemberview/edit/{member}",
        data={"team": world.team_id("devcrew"), "user": OTHER, "role": "owner"},
    )
    assert response.status_code == 404
    assert other.post(f"/teammemberview/delete/{member}").status_code == 404
    assert other.post(f"/grantview/delete/{grant}").status_code == 404
    response = world.client(CONTRIBUTOR).post(
        f"/namespaceview/edit/{devteam}", data={"visibility": "public", "description": "mine"}
    )
    assert response.status_code == 404

    namespace = fresh(world.app, Namespace, devteam)
    assert (namespace.visibility, namespace.description) == (Visibility.PRIVATE, "devteam images")
    assert fresh(world.app, TeamMember, member).user_id == world.user_id(OWNER)
    assert fresh(world.app, Grant, grant) is not None
