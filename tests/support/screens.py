"""The world of the screen tests (tests/integration/views/screens/), and reading FAB's pages.

Every screen, every role, through FAB's test client: what appears, and what a direct URL to a
row the user may not see returns. The world (built once per test on the per-test database):

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
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portus_fab.access import management
from portus_fab.catalog import repositories
from portus_fab.models import Grant, Namespace, Repository, Role, Tag, Team, TeamMember, Visibility
from tests.conftest import add_user

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


def grants(app: Flask) -> set[tuple[int, int | None, int | None, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {
        (g.namespace_id, g.user_id, g.team_id, g.role.value) for g in session.scalars(select(Grant))
    }


def members(app: Flask) -> set[tuple[int, int, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {(m.team_id, m.user_id, m.role.value) for m in session.scalars(select(TeamMember))}


# FAB's answer to a related row (team, namespace) the form does not offer: no value at all.
NOT_OFFERED = "This field is required."
