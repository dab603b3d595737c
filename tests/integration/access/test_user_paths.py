"""A personal namespace for every user, on EVERY path that creates users; deleting a user removes
their rights but keeps the namespace (it may hold images).

Paths: `sm.add_user`, FAB's admin screen (`/users/add`), FAB's REST API
(`POST /api/v1/security/users/` with a JWT from `/api/v1/security/login`), `flask fab create-user`
and `create-admin`, and self-registration (`/register/form` then the activation URL).

Self-registration: FAB's form carries a reCAPTCHA field, which Flask-WTF does not check when the app
is in TESTING mode (a public key is set only so that the widget renders), so the real form is
posted. FAB then mails the activation link with Flask-Mail,
which is not installed here (without it FAB drops the registration): the test replaces
`send_email` to capture the link instead of mailing it, and opens it like the user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.cli import FlaskGroup
from flask.testing import FlaskClient
from flask_appbuilder.security.registerviews import BaseRegisterUser
from flask_appbuilder.security.sqla.models import RegisterUser, User
from sqlalchemy import func, select

from portus_fab.access import management
from portus_fab.models import Grant, Namespace, NamespaceKind, Role, Team, TeamMember, Visibility
from tests.conftest import USER_ROLE, add_user, make_app

PASSWORD = "secret"
# FAB's REST API signs its JWTs with SECRET_KEY; PyJWT warns (an error in this suite) below 32
# bytes, and the shared fixtures use a short one. Production generates a 64-character key.
LONG_SECRET_KEY = "test-secret-key-long-enough-for-hs256-jwts"


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", SECRET_KEY=LONG_SECRET_KEY)
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def user_by_name(app: Flask, username: str) -> User | None:
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(User).where(User.username == username))


def assert_personal_namespace(app: Flask, username: str, expected_name: str) -> Namespace:
    """The user exists and owns exactly one private personal namespace named `expected_name`."""
    user = user_by_name(app, username)
    assert user is not None, f"{username} was not created"
    session = app.appbuilder.session
    namespaces = session.scalars(select(Namespace).where(Namespace.user_id == user.id)).all()
    assert [ns.name for ns in namespaces] == [expected_name]
    namespace = namespaces[0]
    assert namespace.kind == NamespaceKind.PERSONAL
    assert namespace.visibility == Visibility.PRIVATE
    owners = session.execute(
        select(Grant.user_id, Grant.team_id, Grant.role).where(Grant.namespace_id == namespace.id)
    ).all()
    assert owners == [(user.id, None, Role.OWNER)]
    return namespace


def login(app: Flask, username: str, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": password})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def user_role_id(app: Flask) -> int:
    return app.appbuilder.sm.find_role(USER_ROLE).id


# --- every creation path ------------------------------------------------------------------------


def test_sm_add_user(app: Flask) -> None:
    add_user(app, "plain")
    assert_personal_namespace(app, "plain", "plain")


def test_admin_screen_add_user(app: Flask) -> None:
    add_user(app, "boss", PASSWORD, admin=True)
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert rules["/users/add"] == "UserDBModelView.add"
    client = login(app, "boss")
    response = client.post(
        "/users/add",
        data={
            "first_name": "Screen",
            "last_name": "User",
            "username": "Screen.User",
            "active": "y",
            "email": "screen@example.com",
            "roles": [user_role_id(app)],
            "password": "pw-screen",
            "conf_password": "pw-screen",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    namespace = assert_personal_namespace(app, "Screen.User", "screen-user")
    assert namespace.description == "Personal namespace of Screen.User"
    # The new user logs in and manages their namespace in the CRUD screen.
    listing = login(app, "Screen.User", "pw-screen").get("/namespaceview/list/")
    assert "screen-user" in listing.get_data(as_text=True)


def api_token(client: FlaskClient, username: str, password: str = PASSWORD) -> str:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": False},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def test_rest_api_add_user(app: Flask) -> None:
    assert app.config["FAB_ADD_SECURITY_API"] is True
    add_user(app, "boss", PASSWORD, admin=True)
    client = app.test_client()
    token = api_token(client, "boss")
    response = client.post(
        "/api/v1/security/users/",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "first_name": "Api",
            "last_name": "User",
            "username": "api_user",
            "email": "api@example.com",
            "active": True,
            "roles": [user_role_id(app)],
            "password": "pw-api",
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert_personal_namespace(app, "api_user", "api_user")


def test_rest_api_refuses_non_admins(app: Flask) -> None:
    add_user(app, "plain")
    client = app.test_client()
    token = api_token(client, "plain")
    response = client.post(
        "/api/v1/security/users/",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "first_name": "No",
            "last_name": "Body",
            "username": "nobody",
            "email": "nobody@example.com",
            "roles": [user_role_id(app)],
            "password": "pw",
        },
    )
    assert response.status_code in (401, 403)
    assert user_by_name(app, "nobody") is None
    assert (
        app.appbuilder.session.scalar(select(Namespace).where(Namespace.name == "nobody")) is None
    )


def fab(runner: Any, *args: str) -> Any:
    """As `flask --app run fab ...` (FAB's group comes from its entry point, not `app.cli`)."""
    result = runner.invoke(FlaskGroup(), args=["fab", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.mark.parametrize("command", ["create-user", "create-admin"])
def test_flask_fab_create_user_and_admin(app: Flask, runner: Any, command: str) -> None:
    role = ["--role", USER_ROLE] if command == "create-user" else []
    fab(
        runner,
        command,
        *role,
        "--username",
        "Cli.Person",
        "--firstname",
        "Cli",
        "--lastname",
        "Person",
        "--email",
        "cli@example.com",
        "--password",
        "pw-cli",
    )
    assert_personal_namespace(app, "Cli.Person", "cli-person")


@pytest.fixture
def registration_app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(
        template_dir,
        tmp_path / "registration",
        AUTH_USER_REGISTRATION=True,
        AUTH_USER_REGISTRATION_ROLE=USER_ROLE,
        # Only to render the widget: Flask-WTF skips the captcha check in TESTING mode.
        RECAPTCHA_PUBLIC_KEY="test-recaptcha-public-key",
    )
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def test_self_registration(registration_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    app = registration_app
    mailed: list[tuple[str, str]] = []  # (username, activation hash) of each "mail" sent

    def send_email(_view: Any, register_user: RegisterUser) -> bool:
        mailed.append((register_user.username, register_user.registration_hash))
        return True

    monkeypatch.setattr(BaseRegisterUser, "send_email", send_email)
    client = app.test_client()
    assert client.get("/register/form").status_code == 200
    response = client.post(
        "/register/form",
        data={
            "username": "Self.Made",
            "first_name": "Self",
            "last_name": "Made",
            "email": "self@example.com",
            "password": "pw-self",
            "conf_password": "pw-self",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert [username for username, _ in mailed] == ["Self.Made"]
    # Registered, not yet a user: no namespace until the link is opened.
    assert user_by_name(app, "Self.Made") is None
    assert (
        app.appbuilder.session.scalar(select(Namespace).where(Namespace.name == "self-made"))
        is None
    )

    response = client.get(f"/register/activation/{mailed[0][1]}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_personal_namespace(app, "Self.Made", "self-made")
    assert [role.name for role in user_by_name(app, "Self.Made").roles] == [USER_ROLE]
    assert "self-made" in login(app, "Self.Made", "pw-self").get("/registry/").get_data(
        as_text=True
    )


# --- names: the registry grammar and clashes ----------------------------------------------------


def test_clashing_names_get_the_first_free_suffix_on_every_path(app: Flask, runner: Any) -> None:
    """`Dev.Ops`, `dev-ops` and `DEV_OPS...` all want `dev-ops`; the first gets it, the next
    ones `dev-ops-2`, `dev-ops-3` in creation order, whichever path created them."""
    session = app.appbuilder.session
    management.create_namespace(session, "dev-ops")  # a team namespace got there first
    session.commit()
    add_user(app, "boss", PASSWORD, admin=True)
    add_user(app, "Dev.Ops")
    assert_personal_namespace(app, "Dev.Ops", "dev-ops-2")
    fab(
        runner,
        "create-user",
        "--role",
        USER_ROLE,
        "--username",
        "dev-ops",
        "--firstname",
        "d",
        "--lastname",
        "o",
        "--email",
        "devops@example.com",
        "--password",
        "pw",
    )
    assert_personal_namespace(app, "dev-ops", "dev-ops-3")
    client = app.test_client()
    response = client.post(
        "/api/v1/security/users/",
        headers={"Authorization": f"Bearer {api_token(client, 'boss')}"},
        json={
            "first_name": "d",
            "last_name": "o",
            "username": "DEV.OPS",
            "email": "devops2@example.com",
            "roles": [user_role_id(app)],
            "password": "pw",
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert_personal_namespace(app, "DEV.OPS", "dev-ops-4")
    assert management.validate_namespace_name("dev-ops-4") is None


# --- deleting a user ----------------------------------------------------------------------------


def give_rights(app: Flask, username: str) -> tuple[int, int, int]:
    """Team membership, a direct grant on a team namespace, and the team's own grant."""
    session = app.appbuilder.session
    user = user_by_name(app, username)
    keeper = add_user(app, "keeper")
    team = management.create_team(session, "crew")
    management.add_member(session, team, keeper, Role.OWNER)
    management.add_member(session, team, user, Role.CONTRIBUTOR)
    shared = management.create_namespace(session, "shared")
    management.set_grant(session, shared, Role.CONTRIBUTOR, team=team)
    management.set_grant(session, shared, Role.VIEWER, user=user)
    session.commit()
    personal = session.scalar(select(Namespace.id).where(Namespace.user_id == user.id))
    return user.id, personal, shared.id


def assert_forgotten(app: Flask, user_id: int, personal: int, shared: int) -> None:
    session = app.appbuilder.session
    session.expire_all()
    assert session.get(User, user_id) is None
    assert session.scalar(select(func.count(Grant.id)).where(Grant.user_id == user_id)) == 0
    assert (
        session.scalar(select(func.count(TeamMember.id)).where(TeamMember.user_id == user_id)) == 0
    )
    # The namespace stays, unowned but for admins, with its name kept from reuse.
    namespace = session.get(Namespace, personal)
    assert namespace is not None
    assert (namespace.kind, namespace.user_id) == (NamespaceKind.PERSONAL, None)
    assert session.scalar(select(func.count(Grant.id)).where(Grant.namespace_id == personal)) == 0
    # Everyone else keeps theirs: the team, its other member and its grant.
    team = session.scalar(select(Team).where(Team.name == "crew"))
    assert [member.user.username for member in team.members] == ["keeper"]
    assert (
        session.scalar(
            select(Grant.role).where(Grant.namespace_id == shared, Grant.team_id == team.id)
        )
        == Role.CONTRIBUTOR
    )


def test_deleting_a_user_with_sm(app: Flask) -> None:
    add_user(app, "leaver")
    ids = give_rights(app, "leaver")
    sm = app.appbuilder.sm
    session = app.appbuilder.session
    session.delete(sm.find_user(username="leaver"))
    session.commit()
    assert_forgotten(app, *ids)


def test_deleting_a_user_in_the_admin_screen(app: Flask) -> None:
    add_user(app, "boss", PASSWORD, admin=True)
    add_user(app, "leaver")
    ids = give_rights(app, "leaver")
    response = login(app, "boss").post(f"/users/delete/{ids[0]}")
    assert response.status_code == 302
    assert_forgotten(app, *ids)
    # A new user of the same name gets a new namespace: the old one may hold someone's images.
    add_user(app, "leaver")
    assert_personal_namespace(app, "leaver", "leaver-2")


def test_deleting_a_user_through_the_rest_api(app: Flask) -> None:
    add_user(app, "boss", PASSWORD, admin=True)
    add_user(app, "leaver")
    ids = give_rights(app, "leaver")
    client = app.test_client()
    response = client.delete(
        f"/api/v1/security/users/{ids[0]}",
        headers={"Authorization": f"Bearer {api_token(client, 'boss')}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_forgotten(app, *ids)
