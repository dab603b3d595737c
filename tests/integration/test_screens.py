"""Every screen, every role, through FAB's test client: what appears, and what a direct URL to a
row the user may not see returns.

The world (built once per test on the per-test database):

| namespace | visibility | grants                       | repository          |
|-----------|------------|------------------------------|---------------------|
| devteam   | private    | team devcrew: owner          | devteam/devapp      |
| opsonly   | private    | team opscrew: owner          | opsonly/opsvault    |
| openhouse | public     | -                            | openhouse/openimg   |
| insiders  | protected  | -                            | insiders/insideimg  |
| _global   | public     | (admins)                     | busybox             |

Team devcrew: olivia owner, carl contributor, vera viewer. Team opscrew: otto owner.
oscar belongs to nothing; boss is an admin. Every user also has a private personal namespace.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portus_fab.access import management
from portus_fab.catalog import repositories
from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Grant,
    Namespace,
    Repository,
    Role,
    Tag,
    Team,
    TeamMember,
    Visibility,
)
from portus_fab.models.activity import Activity, RegistryEventRecord
from tests.conftest import add_user, make_app
from tests.support.statements import count_statements

PASSWORD = "secret"
T0 = dt.datetime(2024, 1, 1, 12, 0, 0)

DEVAPP = "devteam/devapp"
OPSVAULT = "opsonly/opsvault"
OPENIMG = "openhouse/openimg"
INSIDEIMG = "insiders/insideimg"
BUSYBOX = "busybox"
ALL_REPOSITORIES = (DEVAPP, OPSVAULT, OPENIMG, INSIDEIMG, BUSYBOX)

ADMIN, OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER = (
    "boss",
    "olivia",
    "carl",
    "vera",
    "oscar",
    "otto",
)
ANONYMOUS = None

# Who may pull what (and so sees it in lists, pages, search and counts).
VISIBLE: dict[str | None, set[str]] = {
    ADMIN: set(ALL_REPOSITORIES),
    OWNER: {DEVAPP, OPENIMG, INSIDEIMG, BUSYBOX},
    CONTRIBUTOR: {DEVAPP, OPENIMG, INSIDEIMG, BUSYBOX},
    VIEWER: {DEVAPP, OPENIMG, INSIDEIMG, BUSYBOX},
    OTHER: {OPENIMG, INSIDEIMG, BUSYBOX},
    ANONYMOUS: {OPENIMG, BUSYBOX},
}
LOGGED_IN = (ADMIN, OWNER, CONTRIBUTOR, VIEWER, OTHER)
EVERYONE = (*LOGGED_IN, ANONYMOUS)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@dataclass
class World:
    app: Flask

    def id_of(self, model: Any, **where: Any) -> int:
        session = self.app.appbuilder.session
        session.expire_all()
        found = session.scalar(select(model.id).filter_by(**where))
        assert found is not None, (model, where)
        return found

    def namespace_id(self, name: str) -> int:
        return self.id_of(Namespace, name=name)

    def team_id(self, name: str) -> int:
        return self.id_of(Team, name=name)

    def repository_id(self, name: str) -> int:
        return self.id_of(Repository, name=name)

    def tag_id(self, repository: str, tag: str) -> int:
        return self.id_of(Tag, repository_id=self.repository_id(repository), name=tag)

    def user_id(self, username: str) -> int:
        return self.app.appbuilder.sm.find_user(username=username).id

    def member_id(self, team: str, username: str) -> int:
        return self.id_of(TeamMember, team_id=self.team_id(team), user_id=self.user_id(username))

    def client(self, username: str | None) -> FlaskClient:
        """A client logged in as `username` (None: anonymous)."""
        client = self.app.test_client()
        if username is not None:
            response = client.post("/login/", data={"username": username, "password": PASSWORD})
            assert response.status_code == 302, response.status_code
            assert "/login" not in response.headers["Location"], "login failed"
        return client


def build_world(app: Flask) -> World:
    session = app.appbuilder.session
    users = {name: add_user(app, name, PASSWORD) for name in (OWNER, CONTRIBUTOR, VIEWER, OTHER)}
    users[OPS_OWNER] = add_user(app, OPS_OWNER, PASSWORD)
    add_user(app, ADMIN, PASSWORD, admin=True)

    devcrew = management.create_team(session, "devcrew", "the developers")
    management.add_member(session, devcrew, users[OWNER], Role.OWNER)
    management.add_member(session, devcrew, users[CONTRIBUTOR], Role.CONTRIBUTOR)
    management.add_member(session, devcrew, users[VIEWER], Role.VIEWER)
    opscrew = management.create_team(session, "opscrew", "operations")
    management.add_member(session, opscrew, users[OPS_OWNER], Role.OWNER)

    devteam = management.create_namespace(session, "devteam", description="devteam images")
    management.set_grant(session, devteam, Role.OWNER, team=devcrew)
    opsonly = management.create_namespace(session, "opsonly", description="opsonly images")
    management.set_grant(session, opsonly, Role.OWNER, team=opscrew)
    management.create_namespace(session, "openhouse", visibility=Visibility.PUBLIC)
    management.create_namespace(session, "insiders", visibility=Visibility.PROTECTED)

    repositories.record_pushes(
        session,
        [
            repositories.Push(
                name,
                "latest",
                digest(n),
                "application/vnd.oci.image.manifest.v1+json",
                ADMIN,
                T0 + dt.timedelta(minutes=n),
            )
            for n, name in enumerate(ALL_REPOSITORIES, start=1)
        ],
    )
    # v1 shares latest's digest: deleting one deletes both.
    repositories.record_pushes(
        session,
        [repositories.Push(DEVAPP, "v1", digest(1), None, OWNER, T0)],
    )
    session.commit()
    return World(app)


@pytest.fixture
def world(app: Flask) -> World:
    return build_world(app)


def body_of(response: Any) -> str:
    return response.get_data(as_text=True)


def text_of(response: Any) -> str:
    """The page's visible text, tags stripped and whitespace collapsed."""
    body = re.sub(r"<script.*?</script>", " ", body_of(response), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def explore_total(response: Any) -> int:
    found = re.search(r'id="portus-repository-total">(\d+)<', body_of(response))
    assert found, body_of(response)[:2000]
    return int(found.group(1))


def explore_repositories(response: Any) -> list[str]:
    """Repository names in the explore table, in page order."""
    table = re.search(r'id="portus-repositories">(.*?)</table>', body_of(response), re.S)
    if table is None:
        return []
    return re.findall(r'<a href="/registry/repositories/[^"]+">([^<]+)</a>', table.group(1))


def explore_namespaces(response: Any) -> list[str]:
    table = re.search(r'id="portus-namespaces">(.*?)</table>', body_of(response), re.S)
    assert table, body_of(response)[:2000]
    return re.findall(r"<tr><td>([^<]+)</td>", table.group(1))


def record_count(response: Any) -> int:
    """FAB's list widget: 'Record Count: N' (no widget at all when the list is empty)."""
    found = re.search(r"Record Count:</strong>\s*(\d+)", body_of(response))
    return int(found.group(1)) if found else 0


def flashes(response: Any) -> str:
    """Flashed messages and form errors of a page, as text."""
    alerts = re.findall(r'class="alert alert-[a-z]+"[^>]*>(.*?)</div>', body_of(response), re.S)
    return " | ".join(" ".join(html.unescape(re.sub(r"<[^>]+>", " ", a)).split()) for a in alerts)


def is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


def refused(response: Any) -> bool:
    """FAB's answer to a route the role has no permission for."""
    return response.status_code == 403 or is_login_redirect(response)


def fresh(app: Flask, model: Any, row_id: int) -> Any:
    session = app.appbuilder.session
    session.expire_all()
    return session.get(model, row_id)


def count_rows(app: Flask, model: Any) -> int:
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(func.count(model.id)))


# --- explore ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", EVERYONE)
def test_explore_lists_exactly_what_each_role_may_pull(world: World, username: str | None) -> None:
    response = world.client(username).get("/registry/")
    assert response.status_code == 200
    listed = explore_repositories(response)
    assert sorted(listed) == sorted(VISIBLE[username])
    assert explore_total(response) == len(VISIBLE[username])
    body = body_of(response)
    for hidden in set(ALL_REPOSITORIES) - VISIBLE[username]:
        assert hidden not in body
    namespaces = explore_namespaces(response)
    visible_namespaces = {name.split("/")[0] for name in VISIBLE[username] if "/" in name}
    assert visible_namespaces <= set(namespaces)
    for hidden in {"devteam", "opsonly"} - visible_namespaces:
        assert hidden not in namespaces
    # Personal namespaces are private: only their owner (and admins) see them.
    if username in (OWNER, CONTRIBUTOR, VIEWER, OTHER):
        assert username in namespaces
        assert {OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER} & set(namespaces) == {username}
    if username == ADMIN:
        assert {OWNER, CONTRIBUTOR, VIEWER, OTHER, OPS_OWNER, ADMIN} <= set(namespaces)


def test_explore_search_never_finds_hidden_repositories(world: World) -> None:
    other = world.client(OTHER)
    response = other.get("/registry/?q=img")
    assert explore_repositories(response) == [INSIDEIMG, OPENIMG]
    assert explore_total(response) == 2

    response = other.get("/registry/?q=ops")
    assert explore_repositories(response) == []
    assert explore_total(response) == 0
    assert 'id="portus-no-repositories"' in body_of(response)
    assert OPSVAULT not in body_of(response)

    response = other.get("/registry/?q=DEVAPP")
    assert explore_total(response) == 0
    assert DEVAPP not in body_of(response)

    response = world.client(VIEWER).get("/registry/?q=DEVAPP")
    assert explore_repositories(response) == [DEVAPP]
    assert explore_total(response) == 1

    response = world.client(ADMIN).get("/registry/?q=ops")
    assert explore_repositories(response) == [OPSVAULT]
    assert explore_total(response) == 1

    # LIKE wildcards are searched literally.
    assert explore_total(other.get("/registry/?q=%25")) == 0
    assert explore_total(other.get("/registry/?q=_")) == 0


def test_explore_sorts_by_name_or_last_push(world: World) -> None:
    admin = world.client(ADMIN)
    by_name = explore_repositories(admin.get("/registry/"))
    assert by_name == sorted(ALL_REPOSITORIES)
    # Pushed at T0+1min ... T0+5min in ALL_REPOSITORIES order: newest first.
    by_push = explore_repositories(admin.get("/registry/?sort=pushed"))
    assert by_push == list(reversed(ALL_REPOSITORIES))
    assert explore_repositories(admin.get("/registry/?sort=nonsense")) == by_name

    other = world.client(OTHER)
    assert explore_repositories(other.get("/registry/?sort=pushed")) == [
        BUSYBOX,
        INSIDEIMG,
        OPENIMG,
    ]
    response = other.get("/registry/?sort=pushed&q=img&page=7")
    assert explore_repositories(response) == [INSIDEIMG, OPENIMG]
    assert explore_total(response) == 2
    assert other.get("/registry/?page=x").status_code == 200


def test_anonymous_browsing_can_be_switched_off(template_dir: Path, tmp_path: Path) -> None:
    app = make_app(template_dir, tmp_path / "closed", PORTUS_ANONYMOUS_BROWSE="false")
    with app.app_context():
        world = build_world(app)
        anonymous = world.client(ANONYMOUS)
        for url in ("/registry/", f"/registry/repositories/{OPENIMG}", "/registry/?q=img"):
            response = anonymous.get(url)
            assert is_login_redirect(response), (url, response.status_code)
            assert "portus-repositor" not in body_of(response)
        # Logged-in users still browse.
        response = world.client(OTHER).get("/registry/")
        assert sorted(explore_repositories(response)) == sorted(VISIBLE[OTHER])
        app.appbuilder.session.remove()


# --- repository, tag and delete pages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "repository", "expected"),
    [
        (
            ADMIN,
            OPSVAULT,
            [
                "Role: none",
                "pull allowed – admin",
                "push allowed – admin",
                "delete allowed – admin",
            ],
        ),
        (
            OWNER,
            DEVAPP,
            [
                "Role: owner",
                "owner through team devcrew (team grant owner, member as owner)",
                "push allowed – role owner",
                "delete allowed – role owner",
            ],
        ),
        (
            CONTRIBUTOR,
            DEVAPP,
            [
                "Role: contributor",
                "contributor through team devcrew (team grant owner, member as contributor)",
                "push allowed – role contributor",
                "delete denied – role contributor may not delete",
            ],
        ),
        (
            VIEWER,
            DEVAPP,
            [
                "Role: viewer",
                "viewer through team devcrew (team grant owner, member as viewer)",
                "pull allowed – role viewer",
                "push denied – role viewer may not push: needs contributor or owner",
            ],
        ),
        (
            OTHER,
            INSIDEIMG,
            [
                "Role: none",
                "pull allowed – the namespace is protected and you are logged in",
                "push denied – no role on namespace 'insiders'",
            ],
        ),
        (
            ANONYMOUS,
            OPENIMG,
            [
                "Role: none",
                "pull allowed – the namespace is public",
                "push denied – anonymous users may only pull",
            ],
        ),
        (
            OTHER,
            BUSYBOX,
            ["pull allowed – the namespace is public", "push denied – no role on namespace"],
        ),
    ],
)
def test_repository_page_explains_the_users_own_access(
    world: World, username: str | None, repository: str, expected: list[str]
) -> None:
    response = world.client(username).get(f"/registry/repositories/{repository}")
    assert response.status_code == 200
    text = text_of(response)
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert f"/{repository}:latest" in text  # the docker pull command
    assert "docker pull " in text
    assert digest(ALL_REPOSITORIES.index(repository) + 1)[7:19] in text  # short digest
    may_delete = username in (ADMIN, OWNER)
    assert ("Delete repository" in text) == may_delete
    assert (f"/registry/delete/{repository}" in body_of(response)) == may_delete


def test_repository_page_lists_every_tag(world: World) -> None:
    response = world.client(VIEWER).get(f"/registry/repositories/{DEVAPP}")
    tags = re.search(r'id="portus-tags">(.*?)</table>', body_of(response), re.S).group(1)
    assert re.findall(r'href="/registry/tags/devteam/devapp/([^"]+)"', tags) == ["latest", "v1"]
    assert "Tags 2" in text_of(response)


@pytest.mark.parametrize("username", EVERYONE)
def test_hidden_repositories_have_no_pages(world: World, username: str | None) -> None:
    client = world.client(username)
    hidden = [*(set(ALL_REPOSITORIES) - VISIBLE[username]), "nosuch/repository", "nosuch"]
    for repository in hidden:
        for url in (
            f"/registry/repositories/{repository}",
            f"/registry/tags/{repository}/latest",
        ):
            response = client.get(url)
            assert response.status_code == 404, (url, response.status_code)
            assert repository not in body_of(response)
        response = client.get(f"/registry/delete/{repository}?tag=latest")
        if username is ANONYMOUS:
            assert is_login_redirect(response)  # anonymous visitors never delete
        else:
            assert response.status_code == 404, (username, repository)
            assert repository not in body_of(response)


def test_tag_page(world: World) -> None:
    client = world.client(CONTRIBUTOR)
    response = client.get(f"/registry/tags/{DEVAPP}/latest")
    assert response.status_code == 200
    text = text_of(response)
    assert f"{DEVAPP}:latest" in text
    assert digest(1) in text
    assert "application/vnd.oci.image.manifest.v1+json" in text
    assert f"by {ADMIN}" in text
    assert "Delete" not in text  # a contributor may not delete here
    assert client.get(f"/registry/tags/{DEVAPP}/nosuchtag").status_code == 404

    response = world.client(OWNER).get(f"/registry/tags/{DEVAPP}/v1")
    assert response.status_code == 200
    assert f"by {OWNER}" in text_of(response)
    assert f"/registry/delete/{DEVAPP}?tag=v1" in body_of(response)

    response = world.client(ANONYMOUS).get(f"/registry/tags/{OPENIMG}/latest")
    assert response.status_code == 200
    assert digest(3) in text_of(response)


@pytest.mark.parametrize(
    ("username", "status"),
    [(ADMIN, 200), (OWNER, 200), (CONTRIBUTOR, 403), (VIEWER, 403), (OTHER, 404)],
)
def test_delete_asks_for_confirmation_naming_every_tag_that_goes(
    world: World, username: str, status: int
) -> None:
    response = world.client(username).get(f"/registry/delete/{DEVAPP}?tag=latest")
    assert response.status_code == status
    if status != 200:
        assert "portus-confirm" not in body_of(response)
        return
    text = text_of(response)
    assert f"Delete {DEVAPP}:latest?" in text
    # v1 shares latest's digest: the registry deletes both.
    assert f"{DEVAPP}:latest" in text and f"{DEVAPP}:v1" in text
    assert digest(1) in text
    assert 'id="portus-confirm"' in body_of(response)


def test_delete_of_an_unknown_tag_is_404(world: World) -> None:
    response = world.client(OWNER).get(f"/registry/delete/{DEVAPP}?tag=nosuchtag")
    assert response.status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_delete_with_the_registry_unreachable_says_so(template_dir: Path, tmp_path: Path) -> None:
    """Nothing listens on the registry URL: the user gets a clear message, not a 500, and
    nothing is removed from the catalog."""
    app = make_app(
        template_dir,
        tmp_path / "noregistry",
        PORTUS_REGISTRY_URL=f"http://127.0.0.1:{free_port()}",
    )
    with app.app_context():
        world = build_world(app)
        client = world.client(OWNER)
        response = client.post(f"/registry/delete/{DEVAPP}", data={"tag": "latest"})
        assert response.status_code == 302
        assert response.headers["Location"].endswith(f"/registry/repositories/{DEVAPP}")
        page = client.get(response.headers["Location"])
        assert page.status_code == 200
        # A non-admin is told what happened, not where the registry is (test_registry_failures).
        assert "The delete did not finish" in flashes(page)
        assert "the registry did not answer" in flashes(page)
        session = app.appbuilder.session
        session.expire_all()
        assert count_rows(app, Tag) == len(ALL_REPOSITORIES) + 1
        assert (
            session.scalar(
                select(func.count(Activity.id)).where(Activity.kind == "delete requested")
            )
            == 0
        )
        # Those the policy refuses never reach the registry.
        assert world.client(CONTRIBUTOR).post(f"/registry/delete/{DEVAPP}").status_code == 403
        assert world.client(OTHER).post(f"/registry/delete/{DEVAPP}").status_code == 404
        app.appbuilder.session.remove()


# --- FAB CRUD screens: lists --------------------------------------------------------------------

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


# --- FAB CRUD screens: direct URLs to one row ---------------------------------------------------


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


# --- forms: validation with clear errors, nothing changed ---------------------------------------


def namespace_names(app: Flask) -> set[str]:
    session = app.appbuilder.session
    session.expire_all()
    return set(session.scalars(select(Namespace.name)))


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("BadName", "invalid namespace name 'BadName'"),
        ("my.team", "no dots: docker would read them as a registry host"),
        ("_global", "invalid namespace name '_global'"),
        ("a--", "invalid namespace name 'a--'"),
        ("x" * 300, "a namespace name has at most"),
        ("devteam", "Already exists."),  # FAB's unique validator
    ],
)
def test_namespace_add_refuses_bad_names(world: World, name: str, error: str) -> None:
    before = namespace_names(world.app)
    response = world.client(ADMIN).post(
        "/namespaceview/add",
        data={"name": name, "visibility": "public", "description": "d"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert error in flashes(response), flashes(response)
    assert namespace_names(world.app) == before


def test_namespace_add_by_admin(world: World) -> None:
    response = world.client(ADMIN).post(
        "/namespaceview/add",
        data={"name": "web-team", "visibility": "protected", "description": "the web"},
        follow_redirects=True,
    )
    assert "Added Row" in flashes(response), flashes(response)
    session = world.app.appbuilder.session
    created = session.scalar(select(Namespace).where(Namespace.name == "web-team"))
    assert (created.visibility, created.kind.value) == (Visibility.PROTECTED, "team")
    # Users do not create namespaces in the screen (admins only, for now).
    response = world.client(OWNER).post(
        "/namespaceview/add", data={"name": "mine", "visibility": "public", "description": "d"}
    )
    assert refused(response)
    assert "mine" not in namespace_names(world.app)


def test_global_namespace_cannot_be_made_private(world: World) -> None:
    global_id = world.namespace_id(GLOBAL_NAMESPACE)
    response = world.client(ADMIN).post(
        f"/namespaceview/edit/{global_id}",
        data={"visibility": "private", "description": "changed"},
        follow_redirects=True,
    )
    assert "the global namespace cannot be private" in flashes(response), flashes(response)
    namespace = fresh(world.app, Namespace, global_id)
    assert namespace.visibility == Visibility.PUBLIC
    assert namespace.description != "changed"
    # protected is fine
    response = world.client(ADMIN).post(
        f"/namespaceview/edit/{global_id}",
        data={"visibility": "protected", "description": "changed"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Namespace, global_id).visibility == Visibility.PROTECTED
    # ... and anonymous visitors no longer see busybox.
    assert BUSYBOX not in explore_repositories(world.client(ANONYMOUS).get("/registry/"))


def grants(app: Flask) -> set[tuple[int, int | None, int | None, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {
        (g.namespace_id, g.user_id, g.team_id, g.role.value) for g in session.scalars(select(Grant))
    }


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


def members(app: Flask) -> set[tuple[int, int, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {(m.team_id, m.user_id, m.role.value) for m in session.scalars(select(TeamMember))}


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


# --- what non-admins manage ---------------------------------------------------------------------

# FAB's answer to a related row (team, namespace) the form does not offer: no value at all.
NOT_OFFERED = "This field is required."


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


def test_namespace_owner_edits_their_namespace_and_its_grants(world: World) -> None:
    client = world.client(OWNER)
    devteam = world.namespace_id("devteam")
    response = client.get(f"/namespaceview/edit/{devteam}")
    assert response.status_code == 200
    response = client.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "protected", "description": "now for everyone"},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    namespace = fresh(world.app, Namespace, devteam)
    assert (namespace.visibility, namespace.description) == (
        Visibility.PROTECTED,
        "now for everyone",
    )
    assert DEVAPP in explore_repositories(world.client(OTHER).get("/registry/"))
    assert DEVAPP not in explore_repositories(world.client(ANONYMOUS).get("/registry/"))

    # The description may be cleared (stored as empty text).
    response = client.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "protected", "description": ""},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Namespace, devteam).description == ""

    # Grants on it: the add form offers only the namespaces they own.
    response = client.get("/grantview/add")
    assert "devteam" in body_of(response)
    assert "opsonly" not in body_of(response)
    response = client.post(
        "/grantview/add",
        data={
            "namespace": devteam,
            "user": OTHER,
            "team": "",
            "role": "contributor",
        },
        follow_redirects=True,
    )
    assert "Added Row" in flashes(response), flashes(response)
    assert (devteam, world.user_id(OTHER), None, "contributor") in grants(world.app)

    before = grants(world.app)
    response = client.post(
        "/grantview/add",
        data={
            "namespace": world.namespace_id("opsonly"),
            "user": OWNER,
            "team": "",
            "role": "owner",
        },
        follow_redirects=True,
    )
    assert NOT_OFFERED in flashes(response), flashes(response)
    assert grants(world.app) == before
    response = client.post(
        f"/namespaceview/edit/{world.namespace_id('opsonly')}",
        data={"visibility": "public", "description": "x"},
    )
    assert response.status_code == 404
    assert fresh(world.app, Namespace, world.namespace_id("opsonly")).visibility == (
        Visibility.PRIVATE
    )
    # Namespace owners edit descriptions, not names or kinds.
    assert "name" not in re.findall(
        r'<(?:input|select)[^>]* name="(\w+)"',
        body_of(client.get(f"/namespaceview/edit/{devteam}")),
    )


def test_only_namespace_owners_edit_repository_descriptions(world: World) -> None:
    devapp = world.repository_id(DEVAPP)
    response = world.client(CONTRIBUTOR).post(
        f"/repositoryview/edit/{devapp}", data={"description": "hijacked"}, follow_redirects=True
    )
    assert "only the namespace's owners edit its repositories" in flashes(response)
    assert fresh(world.app, Repository, devapp).description == ""
    response = world.client(OWNER).post(
        f"/repositoryview/edit/{devapp}", data={"description": "the app"}, follow_redirects=True
    )
    assert "Changed Row" in flashes(response), flashes(response)
    assert fresh(world.app, Repository, devapp).description == "the app"
    assert "the app" in text_of(world.client(VIEWER).get(f"/registry/repositories/{DEVAPP}"))
    # Repositories and tags are never added or deleted in the CRUD screens.
    tag = world.tag_id(DEVAPP, "latest")
    for username in (ADMIN, OWNER):
        client = world.client(username)
        assert refused(client.get("/repositoryview/add"))
        assert refused(client.post(f"/repositoryview/delete/{devapp}"))
        assert refused(client.post(f"/tagview/delete/{tag}"))
        assert refused(client.post(f"/tagview/edit/{tag}", data={"name": "renamed"}))
    assert fresh(world.app, Tag, tag).name == "latest"


# --- query counts do not grow with rows ---------------------------------------------------------


def seed(app: Flask, start: int, count: int) -> None:
    """`count` repositories spread over two visible namespaces (public openhouse, devteam via
    the team) and one hidden (opsonly, every third); the first few with 10 tags each."""
    session = app.appbuilder.session
    namespaces = [world_namespace_id(app, name) for name in ("openhouse", "devteam", "opsonly")]
    for i in range(start, start + count):
        namespace_id = namespaces[i % 3]
        repository = Repository(
            name=f"{('openhouse', 'devteam', 'opsonly')[i % 3]}/bulk{i:04d}",
            namespace_id=namespace_id,
            last_pushed_at=T0 + dt.timedelta(seconds=i),
        )
        session.add(repository)
        for t in range(10 if i - start < 6 else 1):
            session.add(
                Tag(
                    repository=repository,
                    name=f"v{t}",
                    digest=digest(1000 + i),
                    pushed_at=T0 + dt.timedelta(seconds=i),
                    pushed_by=OWNER,
                )
            )
    session.commit()


def world_namespace_id(app: Flask, name: str) -> int:
    return app.appbuilder.session.scalar(select(Namespace.id).where(Namespace.name == name))


EXPLORE_URLS = ("/registry/", "/registry/?sort=pushed", "/registry/?q=bulk", "/registry/?page=2")


def statements_per_page(
    world: World, client: FlaskClient, urls: tuple[str, ...]
) -> list[tuple[int, int]]:
    """Per URL: (all statements, statements on portus_fab's own tables). The rest is FAB's:
    the user, their roles, and one permission check per menu entry."""
    counts = []
    for url in urls:
        client.get(url)  # warm: the first request of a login loads roles and permissions
        with count_statements(world.app) as statements:
            response = client.get(url)
        assert response.status_code == 200, url
        counts.append((len(statements), sum("portus_" in s for s in statements)))
    return counts


def test_explore_query_count_does_not_grow_with_rows(world: World) -> None:
    owner = world.client(OWNER)
    seed(world.app, 0, 30)
    small = statements_per_page(world, owner, EXPLORE_URLS)
    response = owner.get("/registry/?q=bulk")
    assert explore_total(response) == 20  # 2 of every 3 seeded: opsonly's are hidden
    assert not any("opsonly/" in name for name in explore_repositories(response))

    seed(world.app, 30, 270)
    large = statements_per_page(world, owner, EXPLORE_URLS)
    assert large == small, (small, large)
    response = owner.get("/registry/?q=bulk")
    assert explore_total(response) == 200
    assert len(explore_repositories(response)) == 50  # one page
    assert explore_total(owner.get("/registry/")) == 200 + len(VISIBLE[OWNER])
    assert "opsonly/" not in body_of(owner.get("/registry/?q=opsonly"))
    # portus_fab's own: the total, one page of rows (tag counts included), the namespaces.
    assert [own for _, own in large] == [3] * len(EXPLORE_URLS), large


def test_repository_page_query_count_does_not_grow_with_tags(world: World) -> None:
    seed(world.app, 0, 9)  # bulk0000..0005 have 10 tags; bulk0006..0008 have one
    owner = world.client(OWNER)
    many, one = "openhouse/bulk0000", "openhouse/bulk0006"
    assert "Tags 10" in text_of(owner.get(f"/registry/repositories/{many}"))
    counts = statements_per_page(
        world, owner, (f"/registry/repositories/{many}", f"/registry/repositories/{one}")
    )
    assert counts[0] == counts[1], counts
