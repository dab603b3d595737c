"""Walking every route of a built app: sign-in with CSRF on, a world with a row behind every
CRUD screen, every route's arguments filled, and a snapshot of every table to prove nothing
changed."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder import ModelView
from sqlalchemy import MetaData, select
from werkzeug.routing import Rule

from portus_fab.access import management
from portus_fab.access.policy import INTERNAL
from portus_fab.auth import access_tokens, refresh, robots
from portus_fab.catalog import repositories
from portus_fab.core import portus
from portus_fab.models import Role, Visibility
from portus_fab.models.activity import Activity, RegistryEventRecord
from tests.conftest import add_user

PASSWORD = "secret"
ADMIN = "boss"
USER = "olivia"
REPOSITORY = "devteam/devapp"


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert found, "no csrf_token in the page"
    return found.group(1)


def sign_in(app: Flask, username: str, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    answer = client.post(
        "/login/", data={"username": username, "password": password, "csrf_token": token}
    )
    assert answer.status_code == 302 and "/login" not in answer.headers["Location"], answer
    return client


def signed_in(client: FlaskClient) -> bool:
    """Whether the client's session still holds a signed-in user (the profile page needs one)."""
    return client.get("/users/userinfo/").status_code == 200


def build_world(app: Flask) -> None:
    """At least one row behind every CRUD screen, so each delete has something to delete."""
    session = app.appbuilder.session
    add_user(app, ADMIN, PASSWORD, admin=True)
    olivia = add_user(app, USER, PASSWORD)
    assert app.appbuilder.sm.add_group("devs", "Developers", "a FAB group") is not None
    crew = management.create_team(session, "devcrew", "the developers")
    management.add_member(session, crew, olivia, Role.OWNER)
    devteam = management.create_namespace(session, "devteam", visibility=Visibility.PRIVATE)
    management.set_grant(session, devteam, Role.OWNER, team=crew)
    # An access token behind the access token screen (admins see everyone's).
    access_tokens.create_token(
        session,
        portus().authentication.hasher,
        access_tokens.ExpiryRules.from_settings(portus().settings),
        olivia,
        "ci",
        "write",
    )
    # A refresh token behind the refresh token screen (admins see everyone's).
    refresh.issue(session, portus().authentication.hasher, olivia, "docker")
    # A robot (with its grant on its namespace) behind the robot screens.
    robots.create_robot(
        session, portus().authentication.hasher, INTERNAL, "devteam", "builder", "write"
    )
    at = dt.datetime(2024, 1, 1, 12, 0, 0)
    repositories.record_pushes(
        session, [repositories.Push(REPOSITORY, "latest", f"sha256:{1:064x}", None, ADMIN, at)]
    )
    session.add(Activity(kind="push", actor=ADMIN, repository=REPOSITORY))
    session.add(RegistryEventRecord(event_id="e-1", action="push", repository=REPOSITORY))
    session.commit()


def snapshot(app: Flask) -> Callable[[], dict[str, list[tuple[Any, ...]]]]:
    """A function returning every row of every table, to compare before and after a request."""
    engine = app.extensions["sqlalchemy"].engine
    metadata = MetaData()
    metadata.reflect(engine)

    def rows() -> dict[str, list[tuple[Any, ...]]]:
        with engine.connect() as connection:
            return {
                name: sorted(map(tuple, connection.execute(select(table))), key=repr)
                for name, table in metadata.tables.items()
            }

    return rows


def model_views(app: Flask) -> dict[str, ModelView]:
    return {view.endpoint: view for view in app.appbuilder.baseviews if isinstance(view, ModelView)}


def first_pk(app: Flask, endpoint: str) -> str:
    view = model_views(app).get(endpoint)
    assert view is not None, f"{endpoint}: <pk> of a view that is not a ModelView"
    model = view.datamodel.obj
    row = app.appbuilder.session.scalars(select(model).limit(1)).first()
    assert row is not None, f"no {model.__name__} row for {endpoint}: add one to build_world"
    return str(view.datamodel.get_pk_value(row))


def fill(app: Flask, rule: Rule) -> list[str]:
    """The URLs the walk requests for one rule: every argument filled with something real."""
    blueprint_endpoint = rule.endpoint.rsplit(".", 1)[0]
    values: dict[str, list[str]] = {}
    for argument in rule.arguments:
        filler = ARGUMENTS.get(argument)
        assert filler is not None, (
            f"{rule.rule}: the walk cannot fill <{argument}>: teach ARGUMENTS"
        )
        values[argument] = filler(app, blueprint_endpoint)
    urls = [rule.rule]
    for argument, choices in values.items():
        pattern = re.compile(rf"<(?:[^:<>]+:)?{argument}>")
        urls = [pattern.sub(choice, url) for url in urls for choice in choices]
    return urls


def action_names(app: Flask, endpoint: str) -> list[str]:
    view = model_views(app)[endpoint]
    return [*view.actions, "nosuchaction"]


ARGUMENTS: dict[str, Callable[[Flask, str], list[str]]] = {
    "pk": lambda app, endpoint: (
        [first_pk(app, endpoint)] if endpoint in model_views(app) else ["1"]
    ),  # FAB's REST API: any id, the cookie alone must not reach it
    "name": lambda app, endpoint: (
        action_names(app, endpoint) if endpoint in model_views(app) else [REPOSITORY]
    ),
    "role_id": lambda app, endpoint: ["1"],
    "tag": lambda app, endpoint: ["latest"],
    "filename": lambda app, endpoint: ["nothing.txt"],
    "locale": lambda app, endpoint: ["en"],
    "group_by": lambda app, endpoint: ["0"],
}


def rules(app: Flask) -> list[Rule]:
    found = sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))
    return [rule for rule in found if rule.endpoint != "static"]


def attempt(client: FlaskClient, method: str, url: str) -> tuple[int, str]:
    """A forged request as a browser would send it: form data, the session cookie, no token.
    An exception (the test client raises them) counts as an answer 500."""
    try:
        answer = client.open(url, method=method, data={"delete": "1"})
    except Exception as error:  # noqa: BLE001 - any crash is reported with the route
        return 500, repr(error)
    return answer.status_code, answer.get_data(as_text=True)
