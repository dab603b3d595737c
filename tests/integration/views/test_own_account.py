"""A user with the User role sees their own profile and changes their own password and name,
through FAB's real forms with CSRF on; nobody else's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_app
from tests.support.routes import ADMIN, PASSWORD, USER, build_world, csrf_token, sign_in

NEW_PASSWORD = "a-new-password"


@pytest.fixture
def world_app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", WTF_CSRF_ENABLED=True)
    with app.app_context():
        build_world(app)
        yield app
        app.appbuilder.session.remove()


def user_id(app: Flask, username: str) -> int:
    return app.appbuilder.sm.find_user(username=username).id


def may_sign_in(app: Flask, username: str, password: str) -> bool:
    client = app.test_client()
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    answer = client.post(
        "/login/", data={"username": username, "password": password, "csrf_token": token}
    )
    return answer.status_code == 302 and "/login" not in answer.headers["Location"]


def follow_action(client: FlaskClient, page: str, action: str) -> str:
    """Press an action button of FAB's profile page: its hidden form posts with the token."""
    form = re.search(rf'<form id="action_form" action="([^"]*/action/{action}/\d+)"', page)
    assert form, f"no {action} button"
    answer = client.post(form.group(1), data={"csrf_token": csrf_token(page)})
    assert answer.status_code == 302, answer.status_code
    return answer.headers["Location"]


def test_a_user_sees_their_own_profile_only(world_app: Flask) -> None:
    client = sign_in(world_app, USER)
    profile = client.get("/users/userinfo/")
    assert profile.status_code == 200
    page = profile.get_data(as_text=True)
    assert f"{USER}@example.test" in page and f"{ADMIN}@example.test" not in page
    boss = user_id(world_app, ADMIN)
    for url in ("/users/list/", f"/users/show/{boss}", f"/users/edit/{boss}", "/users/add"):
        answer = client.get(url)
        assert answer.status_code in (302, 403), (url, answer.status_code)
        assert ADMIN not in answer.get_data(as_text=True), url


def test_a_user_changes_their_own_password(world_app: Flask) -> None:
    client = sign_in(world_app, USER)
    profile = client.get("/users/userinfo/").get_data(as_text=True)
    form_url = follow_action(client, profile, "resetmypassword")
    assert form_url.endswith("/resetmypassword/form")
    form = client.get(form_url)
    assert form.status_code == 200
    answer = client.post(
        form_url,
        data={
            "password": NEW_PASSWORD,
            "conf_password": NEW_PASSWORD,
            "csrf_token": csrf_token(form.get_data(as_text=True)),
        },
    )
    assert answer.status_code == 302
    assert may_sign_in(world_app, USER, NEW_PASSWORD)
    assert not may_sign_in(world_app, USER, PASSWORD)
    assert may_sign_in(world_app, ADMIN, PASSWORD)  # nobody else's password changed


def test_the_password_form_without_its_token_changes_nothing(world_app: Flask) -> None:
    client = sign_in(world_app, USER)
    answer = client.post(
        "/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD}
    )
    assert answer.status_code == 400
    assert may_sign_in(world_app, USER, PASSWORD)


def test_the_reset_button_with_someone_elses_id_resets_only_ones_own(world_app: Flask) -> None:
    """FAB's action takes an id in the URL; the form it leads to acts on the signed-in user."""
    client = sign_in(world_app, USER)
    profile = client.get("/users/userinfo/").get_data(as_text=True)
    boss = user_id(world_app, ADMIN)
    answer = client.post(
        f"/users/action/resetmypassword/{boss}", data={"csrf_token": csrf_token(profile)}
    )
    assert answer.headers["Location"].endswith("/resetmypassword/form")
    form = client.get("/resetmypassword/form").get_data(as_text=True)
    client.post(
        "/resetmypassword/form",
        data={
            "password": NEW_PASSWORD,
            "conf_password": NEW_PASSWORD,
            "csrf_token": csrf_token(form),
        },
    )
    assert may_sign_in(world_app, ADMIN, PASSWORD)
    assert may_sign_in(world_app, USER, NEW_PASSWORD)
    # The admins' form for resetting anyone's password stays theirs.
    refused = client.get(f"/resetpassword/form?pk={boss}")
    assert refused.status_code in (302, 403)


def test_a_user_edits_their_own_name(world_app: Flask) -> None:
    client = sign_in(world_app, USER)
    profile = client.get("/users/userinfo/").get_data(as_text=True)
    form_url = follow_action(client, profile, "userinfoedit")
    form = client.get(form_url)
    assert form.status_code == 200
    answer = client.post(
        form_url,
        data={
            "first_name": "Olivia",
            "last_name": "Owner",
            "csrf_token": csrf_token(form.get_data(as_text=True)),
        },
    )
    assert answer.status_code == 302
    world_app.appbuilder.session.expire_all()
    user = world_app.appbuilder.sm.find_user(username=USER)
    assert (user.first_name, user.last_name) == ("Olivia", "Owner")
    assert world_app.appbuilder.sm.find_user(username=ADMIN).first_name == ADMIN
