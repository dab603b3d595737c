"""Every free-text field of the screens has a length limit with a clear form error, and the
domain functions the CLI calls enforce the description limit too.

SQLite stores a 2 MB description in a TEXT (or even a VARCHAR(64)) column without complaint, and
PostgreSQL answers a too-long VARCHAR with an error page: the limits are the app's. The screens
are found in `app.url_map` (every add and edit form, ours and FAB's, and the edit-my-details
form), and every text input and textarea on them is sent an overlong value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder import ModelView
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from portus_fab.access import management
from portus_fab.catalog import repositories
from portus_fab.errors import Invalid
from portus_fab.models import Namespace, Repository, Role, Team
from tests.conftest import add_user, make_app

ADMIN, OWNER = "boss", "olivia"
TWO_MB = "x" * (2 * 1024 * 1024)
OVERLONG = "y" * 100_000  # beyond every limit; small enough to send to each field
DIGEST = f"sha256:{1:064x}"
PUSHED_AT = dt.datetime(2024, 1, 1)
LIMIT_ERRORS = ("at most", "cannot be longer than")  # ours, and WTForms' Length


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    # Self-registration on, for its form; reCAPTCHA is not checked under TESTING.
    app = make_app(
        template_dir, tmp_path / "data", AUTH_USER_REGISTRATION=True, RECAPTCHA_PUBLIC_KEY="k"
    )
    with app.app_context():
        session = app.appbuilder.session
        add_user(app, ADMIN, admin=True)
        owner = add_user(app, OWNER)
        team = management.create_team(session, "devcrew", "the developers")
        management.add_member(session, team, owner, Role.OWNER)
        namespace = management.create_namespace(session, "devteam", description="images")
        management.set_grant(session, namespace, Role.OWNER, team=team)
        repositories.record_pushes(
            session, [repositories.Push("devteam/app", "latest", DIGEST, None, OWNER, PUSHED_AT)]
        )
        session.commit()
        yield app
        app.appbuilder.session.remove()


def login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": "secret"})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


def text_fields(html: str) -> list[str]:
    """Names of the text inputs and textareas of a form page."""
    names = []
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if name and re.search(r'type="text"', tag):
            names.append(name.group(1))
    names += re.findall(r'<textarea[^>]*name="([^"]+)"', html)
    return names


def first_id(view: ModelView) -> str | None:
    _count, rows = view.datamodel.query(page_size=1)
    return str(view.datamodel.get_pk_value(rows[0])) if rows else None


def form_urls(app: Flask) -> list[tuple[str, Any]]:
    """(URL, the model view or None) of every form of a model view the admin may open: add,
    edit, and any page a view adds that is shown by GET and posted (a robot's "new")."""
    views = {view.blueprint.name: view for view in app.appbuilder.baseviews if view.blueprint}
    urls = []
    for rule in app.url_map.iter_rules():
        blueprint, _, method = rule.endpoint.rpartition(".")
        view = views.get(blueprint)
        if not isinstance(view, ModelView) or not {"GET", "POST"} <= rule.methods:
            continue
        permission = f"can_{view.method_permission_name.get(method, method)}"
        if method in ("delete", "action") or permission not in view.base_permissions:
            continue
        if not rule.arguments:
            urls.append((rule.rule, view))
        elif rule.arguments == {"pk"} and (row := first_id(view)) is not None:
            urls.append((rule.rule.replace("<pk>", row), view))
    urls += [("/userinfoeditview/form", None), ("/register/form", None)]
    return urls


def stored(app: Flask, view: Any, field: str, value: str) -> int:
    model = app.appbuilder.sm.user_model if view is None else view.datamodel.obj
    column = getattr(model, field, None)
    if not isinstance(column, InstrumentedAttribute) or not hasattr(column, "type"):
        return 0  # a relationship typed by name: nothing of the text is stored
    session = app.appbuilder.session
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(column == value))


def test_every_text_field_of_every_form_is_limited(app: Flask) -> None:
    admin = login(app, ADMIN)
    anonymous = app.test_client()
    checked, unlimited = [], {}
    for url, view in form_urls(app):
        client = anonymous if url.startswith("/register") else admin
        page = client.get(url)
        assert page.status_code == 200, url
        fields = text_fields(page.get_data(as_text=True))
        assert fields, url
        for field in fields:
            data = {other: "ok1" for other in fields if other != field}
            response = client.post(url, data={**data, field: OVERLONG}, follow_redirects=True)
            body = response.get_data(as_text=True)
            if response.status_code != 200 or not any(error in body for error in LIMIT_ERRORS):
                unlimited[f"{url} {field}"] = response.status_code
            elif stored(app, view, field, OVERLONG):
                unlimited[f"{url} {field}"] = "stored"
            checked.append(f"{url} {field}")
    assert not unlimited, unlimited
    # The fields the issue names are among those checked.
    for expected in ("/namespaceview/add description", "/teamview/add description"):
        assert expected in checked, checked
    assert any(c.startswith("/repositoryview/edit/") and c.endswith("description") for c in checked)
    assert "/userinfoeditview/form first_name" in checked


def flashes(response: Any) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def test_a_2mb_namespace_description_is_refused_and_the_limit_accepted(app: Flask) -> None:
    owner = login(app, OWNER)
    devteam = app.appbuilder.session.scalar(select(Namespace.id).where(Namespace.name == "devteam"))
    response = owner.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "private", "description": TWO_MB},
        follow_redirects=True,
    )
    limit = management.DESCRIPTION_MAX
    assert f"a description has at most {limit} characters, not {len(TWO_MB)}" in flashes(response)
    session = app.appbuilder.session
    session.expire_all()
    assert session.get(Namespace, devteam).description == "images"

    response = owner.post(
        f"/namespaceview/edit/{devteam}",
        data={"visibility": "private", "description": "d" * limit},
        follow_redirects=True,
    )
    assert "Changed Row" in flashes(response)
    session.expire_all()
    assert session.get(Namespace, devteam).description == "d" * limit


@pytest.mark.parametrize("model", [Repository, Team])
def test_other_descriptions_at_the_limit_are_accepted(app: Flask, model: Any) -> None:
    session = app.appbuilder.session
    row = session.scalar(select(model.id))
    url = f"/{'repositoryview' if model is Repository else 'teamview'}/edit/{row}"
    limit = management.DESCRIPTION_MAX
    response = login(app, ADMIN).post(url, data={"description": "d" * limit}, follow_redirects=True)
    assert "Changed Row" in flashes(response), flashes(response)
    session.expire_all()
    assert session.get(model, row).description == "d" * limit


def test_typed_names_are_bounded_without_echoing_them(app: Flask) -> None:
    """An exact-name field neither looks up nor repeats a megabyte of text."""
    devteam = app.appbuilder.session.scalar(select(Namespace.id).where(Namespace.name == "devteam"))
    response = login(app, OWNER).post(
        "/grantview/add",
        data={"namespace": devteam, "user": TWO_MB, "team": "", "role": "viewer"},
    )
    assert "a user name has at most 128 characters" in flashes(response)
    assert len(response.get_data()) < 200_000


def run_cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["portus", *args])


@pytest.mark.parametrize(
    "command",
    [["namespace", "create", "longdesc"], ["team", "create", "longdesc"]],
    ids=["namespace", "team"],
)
def test_the_cli_refuses_long_descriptions(app: Flask, command: list[str]) -> None:
    limit = management.DESCRIPTION_MAX
    result = run_cli(app, *command, "--description", "d" * (limit + 1))
    assert result.exit_code != 0
    assert f"a description has at most {limit} characters" in result.output
    session = app.appbuilder.session
    session.expire_all()
    assert session.scalar(select(Namespace.id).where(Namespace.name == "longdesc")) is None
    assert session.scalar(select(Team.id).where(Team.name == "longdesc")) is None
    result = run_cli(app, *command, "--description", "d" * limit)
    assert result.exit_code == 0, result.output


def test_domain_functions_refuse_long_descriptions(app: Flask) -> None:
    session = app.appbuilder.session
    too_long = "d" * (management.DESCRIPTION_MAX + 1)
    with pytest.raises(Invalid, match="a description has at most"):
        management.create_namespace(session, "longdesc", description=too_long)
    with pytest.raises(Invalid, match="a description has at most"):
        management.create_team(session, "longdesc", too_long)
    with pytest.raises(Invalid, match="a team name has at most 128"):
        management.create_team(session, "t" * 129)
