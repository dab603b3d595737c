"""The grant and team-member forms name no one the user does not manage.

A namespace owner who is not an admin opens the grant and member screens (add, edit, and the
list's search form): no other user's username or full name, and no team they do not manage,
appears in the HTML. The user (and a grant's team) is typed by exact name and resolved on
submit, so adding still works for anyone - including a user the owner never saw listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portus_fab.access import management
from portus_fab.models import Grant, Namespace, Role, Team, TeamMember
from tests.conftest import add_user, make_app

ADMIN, OWNER, MEMBER, OTHER, OPS_OWNER = "boss", "olivia", "carl", "oscar", "otto"
# Full names as tests.conftest.add_user makes them ("<first> <last>").
STRANGERS = (ADMIN, OTHER, OPS_OWNER)
UNMANAGED_TEAMS = ("opscrew",)


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data")
    with app.app_context():
        session = app.appbuilder.session
        add_user(app, ADMIN, admin=True)
        users = {name: add_user(app, name) for name in (OWNER, MEMBER, OTHER, OPS_OWNER)}
        devcrew = management.create_team(session, "devcrew", "the developers")
        management.add_member(session, devcrew, users[OWNER], Role.OWNER)
        management.add_member(session, devcrew, users[MEMBER], Role.CONTRIBUTOR)
        opscrew = management.create_team(session, "opscrew", "operations")
        management.add_member(session, opscrew, users[OPS_OWNER], Role.OWNER)
        devteam = management.create_namespace(session, "devteam")
        management.set_grant(session, devteam, Role.OWNER, team=devcrew)
        opsonly = management.create_namespace(session, "opsonly")
        management.set_grant(session, opsonly, Role.OWNER, team=opscrew)
        management.set_grant(session, opsonly, Role.VIEWER, user=users[OTHER])
        session.commit()
        yield app
        app.appbuilder.session.remove()


def login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": "secret"})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def row_id(app: Flask, model: Any, **where: Any) -> int:
    session = app.appbuilder.session
    session.expire_all()
    found = session.scalar(select(model.id).filter_by(**where))
    assert found is not None
    return found


def named(app: Flask, model: Any, name: str) -> int:
    return row_id(app, model, name=name)


def user_id(app: Flask, username: str) -> int:
    return app.appbuilder.sm.find_user(username=username).id


def form_pages(app: Flask) -> list[str]:
    devteam_grant = row_id(app, Grant, namespace_id=named(app, Namespace, "devteam"))
    member = row_id(
        app, TeamMember, team_id=named(app, Team, "devcrew"), user_id=user_id(app, MEMBER)
    )
    return [
        "/grantview/add",
        "/grantview/list/",
        f"/grantview/edit/{devteam_grant}",
        "/teammemberview/add",
        "/teammemberview/list/",
        f"/teammemberview/edit/{member}",
    ]


def words(html: str) -> set[str]:
    return set(re.findall(r"[A-Za-z0-9_.-]+", html))


def test_namespace_owner_sees_no_stranger_nor_unmanaged_team(app: Flask) -> None:
    client = login(app, OWNER)
    for url in form_pages(app):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        found = words(html)
        for name in STRANGERS + UNMANAGED_TEAMS:
            assert name not in found, (url, name)
        for username in STRANGERS:
            assert f"{username} Test" not in html, (url, username)
    # The member list and its search name the members of the owner's own team.
    assert MEMBER in words(client.get("/teammemberview/list/").get_data(as_text=True))


def test_forms_type_the_user_by_exact_name(app: Flask) -> None:
    client = login(app, OWNER)
    for url in ("/grantview/add", "/teammemberview/add"):
        html = client.get(url).get_data(as_text=True)
        assert re.search(r'<input[^>]*name="user"[^>]*type="text"', html) or re.search(
            r'<input[^>]*type="text"[^>]*name="user"', html
        ), url
        assert not re.search(r'<select[^>]*name="user"', html), url


def members(app: Flask) -> set[tuple[int, int, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {(m.team_id, m.user_id, m.role.value) for m in session.scalars(select(TeamMember))}


def grants(app: Flask) -> set[tuple[int, int | None, int | None, str]]:
    session = app.appbuilder.session
    session.expire_all()
    return {
        (g.namespace_id, g.user_id, g.team_id, g.role.value) for g in session.scalars(select(Grant))
    }


def errors_of(response: Any) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


@pytest.mark.parametrize("username", [OWNER, ADMIN])
def test_adding_by_username_still_works(app: Flask, username: str) -> None:
    client = login(app, username)
    devteam, devcrew = named(app, Namespace, "devteam"), named(app, Team, "devcrew")
    response = client.post(
        "/teammemberview/add",
        data={"team": devcrew, "user": OTHER, "role": "viewer"},
        follow_redirects=True,
    )
    assert "Added Row" in errors_of(response)
    assert (devcrew, user_id(app, OTHER), "viewer") in members(app)

    response = client.post(
        "/grantview/add",
        data={"namespace": devteam, "user": OPS_OWNER, "team": "", "role": "contributor"},
        follow_redirects=True,
    )
    assert "Added Row" in errors_of(response)
    assert (devteam, user_id(app, OPS_OWNER), None, "contributor") in grants(app)
    # A team is named exactly too: any team, as before, without listing them.
    response = client.post(
        "/grantview/add",
        data={"namespace": devteam, "user": "", "team": "opscrew", "role": "viewer"},
        follow_redirects=True,
    )
    assert "Added Row" in errors_of(response)
    assert (devteam, None, named(app, Team, "opscrew"), "viewer") in grants(app)


@pytest.mark.parametrize(
    ("url", "data", "error"),
    [
        ("/teammemberview/add", {"user": "nobody"}, "no user named 'nobody'"),
        ("/teammemberview/add", {"user": ""}, "This field is required."),
        ("/grantview/add", {"user": "nobody", "team": ""}, "no user named 'nobody'"),
        ("/grantview/add", {"user": "", "team": "noteam"}, "no team named 'noteam'"),
        ("/grantview/add", {"user": "", "team": ""}, "a grant is for exactly one user or one team"),
    ],
)
def test_unknown_names_are_form_errors(
    app: Flask, url: str, data: dict[str, str], error: str
) -> None:
    before = (members(app), grants(app))
    fixed = {"team": named(app, Team, "devcrew"), "namespace": named(app, Namespace, "devteam")}
    response = login(app, OWNER).post(
        url, data={**fixed, "role": "viewer", **data}, follow_redirects=True
    )
    assert response.status_code == 200
    assert error in errors_of(response), errors_of(response)
    assert (members(app), grants(app)) == before


def test_edit_form_shows_the_rows_own_user(app: Flask) -> None:
    """An existing grant's user is filled in by name, and saving it unchanged keeps it."""
    client = login(app, OWNER)
    devteam = named(app, Namespace, "devteam")
    client.post(
        "/grantview/add",
        data={"namespace": devteam, "user": OTHER, "team": "", "role": "viewer"},
    )
    grant = row_id(app, Grant, namespace_id=devteam, user_id=user_id(app, OTHER))
    html = client.get(f"/grantview/edit/{grant}").get_data(as_text=True)
    assert re.search(rf'name="user"[^>]*value="{OTHER}"|value="{OTHER}"[^>]*name="user"', html)
    response = client.post(
        f"/grantview/edit/{grant}",
        data={"namespace": devteam, "user": OTHER, "team": "", "role": "contributor"},
        follow_redirects=True,
    )
    assert "Changed Row" in errors_of(response)
    assert (devteam, user_id(app, OTHER), None, "contributor") in grants(app)
