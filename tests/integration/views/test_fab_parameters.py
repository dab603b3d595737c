"""Bad parameters to every FAB route - portus_fab's screens, FAB's security screens and its REST
API - answer 400 or 404, never 500; the same routes with good parameters still answer 200.

The routes are read from `app.url_map`, so a view added later is covered without naming it.
Exceptions are not propagated here: a crash shows up as the 500 a user would get. The same
tests run on PostgreSQL in tests/e2e/postgres/test_fab_walks_postgres.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder import ModelView
from flask_appbuilder.api import BaseApi
from flask_appbuilder.baseviews import BaseModelView
from flask_appbuilder.charts.views import GroupByChartView
from sqlalchemy import JSON
from werkzeug.routing import Rule

from portus_fab.views.parameters import PAGE_MAX, PAGE_SIZE_MAX
from tests.conftest import make_app
from tests.support import fab_world
from tests.support.fab_world import ADMIN

HUGE = "9" * 25  # beyond any database integer
ABSENT = str(2**30)  # a well-formed id no row has
BEYOND_INTEGER = str(2**31)  # beyond PostgreSQL's INTEGER, the id columns' type
BAD_IDS = (HUGE, BEYOND_INTEGER, "abc", "-1", "1.5")


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", **fab_world.CONFIG)
    with app.app_context():
        fab_world.populate(app)
        yield app
        app.appbuilder.session.remove()


@pytest.fixture
def clients(app: Flask) -> dict[str | None, FlaskClient]:
    return {ADMIN: fab_world.login(app, ADMIN), None: fab_world.login(app, None)}


@dataclass(frozen=True)
class Route:
    rule: Rule
    view: Any
    kind: str  # the method of a model view (list, show, edit, ...), or "api"

    def url(self, **values: str) -> str:
        """The rule's path with each <converter:name> replaced by values[name]."""
        return re.sub(
            r"<(?:[^:<>]+:)?([^<>]+)>", lambda found: values[found.group(1)], self.rule.rule
        )

    @property
    def methods(self) -> list[str]:
        return sorted(self.rule.methods - {"HEAD", "OPTIONS"})


def fab_routes(app: Flask) -> list[Route]:
    views = {
        view.blueprint.name: view for view in app.appbuilder.baseviews if view.blueprint is not None
    }
    routes = []
    for rule in app.url_map.iter_rules():
        blueprint, _, method = rule.endpoint.rpartition(".")
        view = views.get(blueprint)
        if isinstance(view, BaseApi):
            routes.append(Route(rule, view, "api"))
        elif isinstance(view, BaseModelView):
            routes.append(Route(rule, view, method))
    return routes


def of_kind(app: Flask, *kinds: str) -> list[Route]:
    found = [route for route in fab_routes(app) if route.kind in kinds]
    assert found, kinds
    return found


def first_id(view: Any) -> str | None:
    _count, rows = view.datamodel.query(page_size=1)
    return str(view.datamodel.get_pk_value(rows[0])) if rows else None


def permitted(route: Route) -> bool:
    """Whether the view has the route's permission at all (the admin role has every one)."""
    permission = route.view.method_permission_name.get(route.kind, route.kind)
    return f"can_{permission}" in route.view.base_permissions


def send(client: FlaskClient, method: str, url: str) -> Any:
    return client.open(url, method=method)


def assert_answers(
    client: FlaskClient, requests: list[tuple[str, str]], expected: set[int]
) -> None:
    wrong = {}
    for method, url in requests:
        status = send(client, method, url).status_code
        if status not in expected:
            wrong[f"{method} {url}"] = status
    assert not wrong, wrong


def bad_list_args(name: str, order_column: str) -> list[str]:
    return [
        f"page_{name}=abc",
        f"page_{name}=-1",
        f"page_{name}={PAGE_MAX + 1}",
        f"page_{name}={HUGE}",
        f"psize_{name}=abc",
        f"psize_{name}=0",
        f"psize_{name}=-1",
        f"psize_{name}={PAGE_SIZE_MAX + 1}",
        f"psize_{name}={HUGE}",
        f"_oc_{name}=nonexistent&_od_{name}=asc",
        f"_oc_{name}={order_column}&_od_{name}=sideways",
        f"_oc_{name}={order_column}",
    ]


@pytest.mark.parametrize("username", [ADMIN, None])
def test_bad_list_parameters_are_400(
    app: Flask, clients: dict[str | None, FlaskClient], username: str | None
) -> None:
    requests = []
    for route in of_kind(app, "list"):
        name = type(route.view).__name__
        order_column = (route.view.order_columns or ["name"])[0]
        requests += [("GET", f"{route.url()}?{args}") for args in bad_list_args(name, order_column)]
    # Related lists on show and edit pages take the related view's parameters.
    for route in of_kind(app, "show", "edit"):
        for related in route.view._related_views:
            name = type(related).__name__
            order_column = (related.order_columns or ["name"])[0]
            row = first_id(route.view) or "1"
            requests += [
                ("GET", f"{route.url(pk=row)}?{args}") for args in bad_list_args(name, order_column)
            ]
    # FAB hands a filter's value on an integer column to the database at any size, and any
    # text for a boolean column or a related row's id (PostgreSQL refuses it); and it offers
    # to sort by JSON columns, which PostgreSQL cannot order.
    for route in of_kind(app, "list"):
        name = type(route.view).__name__
        columns = route.view.datamodel.list_columns
        for column in route.view.list_columns:
            json = isinstance(getattr(columns.get(column), "type", None), JSON)
            python_property = column not in columns and not route.view.datamodel.is_relation(column)
            if json or python_property:
                requests.append(("GET", f"{route.url()}?_oc_{name}={column}&_od_{name}=asc"))
        for column in route.view.search_columns:
            if route.view.datamodel.is_integer(column):
                requests.append(("GET", f"{route.url()}?_flt_0_{column}={HUGE}"))
            if route.view.datamodel.is_boolean(column):
                requests.append(("GET", f"{route.url()}?_flt_0_{column}=abc"))
            if route.view.datamodel.is_relation(column):
                for value in ("abc", BEYOND_INTEGER):
                    requests.append(("GET", f"{route.url()}?_flt_0_{column}={value}"))
    assert any("_oc_TagView=platforms" in url for _method, url in requests)
    assert_answers(clients[username], requests, {400})


def test_good_list_parameters_and_filters_answer_200(
    app: Flask, clients: dict[str | None, FlaskClient]
) -> None:
    admin = clients[ADMIN]
    requests = []
    for route in of_kind(app, "list"):
        name = type(route.view).__name__
        url = route.url()
        requests += [("GET", url), ("GET", f"{url}?page_{name}=0&psize_{name}={PAGE_SIZE_MAX}")]
        for column in route.view.order_columns:
            for direction in ("asc", "desc"):
                requests.append(("GET", f"{url}?_oc_{name}={column}&_od_{name}={direction}"))
        # Odd filter values are FAB's to ignore; none may crash a list.
        for column in route.view.search_columns:
            values: tuple[str, ...] = ("abc", ABSENT, "-1", "2024-13-45")
            if route.view.datamodel.is_boolean(column):
                values = ("y", "n")
            elif route.view.datamodel.is_relation(column):
                values = (ABSENT,)
            for value in values:
                requests.append(("GET", f"{url}?_flt_0_{column}={value}"))
    assert_answers(admin, requests, {200})


def test_normal_pages_answer_200(app: Flask, clients: dict[str | None, FlaskClient]) -> None:
    admin = clients[ADMIN]
    requests = []
    for route in of_kind(app, "show", "edit"):
        row = first_id(route.view)
        if row is not None and permitted(route):
            requests.append(("GET", route.url(pk=row)))
    assert len(requests) >= 10, requests
    assert_answers(admin, requests, {200})


@pytest.mark.parametrize("username", [ADMIN, None])
def test_bad_ids_are_404(
    app: Flask, clients: dict[str | None, FlaskClient], username: str | None
) -> None:
    requests = []
    # Every model-view route taking an id: show, edit, delete, and any a view adds.
    for route in fab_routes(app):
        if route.kind != "api" and route.rule.arguments == {"pk"}:
            for pk in BAD_IDS:
                requests += [(method, route.url(pk=pk)) for method in route.methods]
    assert len({route.kind for route in fab_routes(app)} & {"show", "edit", "delete"}) == 3
    assert_answers(clients[username], requests, {404, 405})
    # A well-formed id of no row: 404 for the admin, who may open every row.
    if username == ADMIN:
        requests = [
            ("GET", route.url(pk=ABSENT))
            for route in of_kind(app, "show", "edit")
            if permitted(route)
        ]
        assert_answers(clients[username], requests, {404})


@pytest.mark.parametrize("username", [ADMIN, None])
def test_unknown_actions_and_rows_are_404(
    app: Flask, clients: dict[str | None, FlaskClient], username: str | None
) -> None:
    client = clients[username]
    requests, not_for_one_row = [], []
    for route in of_kind(app, "action"):
        row = first_id(route.view) or "1"
        requests.append(("POST", route.url(name="nonexistent", pk=row)))
        for name, action in route.view.actions.items():
            requests += [("POST", route.url(name=name, pk=pk)) for pk in BAD_IDS]
            if not action.single:
                not_for_one_row.append(("POST", route.url(name=name, pk=row)))
            elif username == ADMIN:
                requests.append(("POST", route.url(name=name, pk=ABSENT)))
    assert_answers(client, requests, {404})
    assert_answers(client, not_for_one_row, {400})

    wrong = {}
    for route in of_kind(app, "action_post"):
        row = first_id(route.view) or "1"
        answers = {
            "nonexistent": client.post(
                route.url(), data={"action": "nonexistent", "rowid": row}
            ).status_code,
            "none": client.post(route.url(), data={"rowid": row}).status_code,
        }
        expected = {"nonexistent": 404, "none": 400}
        for name, action in route.view.actions.items():
            for rowid in (HUGE, row):
                data = {"action": name, "rowid": rowid}
                key = f"{name} {rowid}"
                answers[key] = client.post(route.url(), data=data).status_code
                if not action.multiple:
                    expected[key] = 400
                elif rowid == HUGE:
                    expected[key] = 404
        for key, status in answers.items():
            if key in expected and status != expected[key]:
                wrong[f"{route.url()} {key}"] = status
    assert not wrong, wrong


def test_actions_still_work(app: Flask, clients: dict[str | None, FlaskClient]) -> None:
    """FAB's one action route in use: an admin resetting a user's password from the user page."""
    owner_id = app.appbuilder.sm.find_user(username=fab_world.OWNER).id
    response = clients[ADMIN].post(f"/users/action/resetpasswords/{owner_id}")
    assert response.status_code == 302
    assert f"/resetpassword/form?pk={owner_id}" in response.headers["Location"]
    # Anonymous: FAB's refusal, not a page telling which users exist.
    response = clients[None].post(f"/users/action/resetpasswords/{owner_id}")
    assert response.status_code == 302 and "/resetpassword" not in response.headers["Location"]


@pytest.mark.parametrize("username", [ADMIN, None])
def test_downloads_and_charts_without_a_file_or_chart_are_404(
    app: Flask, clients: dict[str | None, FlaskClient], username: str | None
) -> None:
    requests = [("GET", route.url(filename="x.txt")) for route in of_kind(app, "download")]
    for route in of_kind(app, "chart"):
        if "<group_by>" in route.rule.rule and isinstance(route.view, GroupByChartView):
            count = len(route.view.definitions)
            requests += [("GET", route.url(group_by=value)) for value in ("zzz", str(count))]
    assert_answers(clients[username], requests, {404})
    if username == ADMIN:
        assert clients[ADMIN].get("/userstatschartview/chart/0").status_code == 200


BAD_QUERIES = (
    "((",
    "(page:abc)",
    f"(page:{HUGE})",
    "(page:-1)",
    f"(filters:!((col:id,opr:eq,value:{HUGE})))",
    f"(filters:!((col:roles,opr:rel_m_m,value:{HUGE})))",
)


@pytest.mark.parametrize("username", [ADMIN, None])
def test_api_bad_queries_and_ids(
    app: Flask, clients: dict[str | None, FlaskClient], username: str | None
) -> None:
    client = clients[username]
    queries, ids = [], []
    for route in of_kind(app, "api"):
        arguments = route.rule.arguments
        if not arguments and "GET" in route.methods:
            queries += [("GET", f"{route.url()}?q={q}") for q in BAD_QUERIES]
        elif arguments:
            # Only ids the rule's converter accepts: others match another rule, or none.
            integer = any(f"<int:{name}>" in route.rule.rule for name in arguments)
            numbers = (HUGE, BEYOND_INTEGER)
            for value in numbers if integer else (*numbers, "-1", "abc"):
                url = route.url(**dict.fromkeys(arguments, value))
                ids += [(method, url) for method in route.methods]
    assert queries and ids
    assert_answers(client, queries, {400})
    # 404 from the check or from werkzeug's int converter; 401 is FAB's answer to anonymous
    # callers for a string id it has no reason to refuse.
    assert_answers(client, ids, {404} if username == ADMIN else {401, 404})
    if username == ADMIN:
        assert client.get("/api/v1/security/users/?q=(page:0,page_size:10)").status_code == 200
        assert client.get("/api/v1/security/users/?q=(page:-1)").get_json() == {
            "message": f"page must be a whole number from 0 to {PAGE_MAX}"
        }


def test_every_kind_of_fab_route_is_covered(app: Flask) -> None:
    """Fails when a model-view route takes an argument these tests do not send bad values to
    (the list parameters are checked on every route)."""
    covered = [set(), {"pk"}, {"name", "pk"}, {"filename"}, {"group_by"}]
    uncovered = {
        route.rule.rule
        for route in fab_routes(app)
        if route.kind != "api" and set(route.rule.arguments) not in covered
    }
    assert not uncovered, uncovered
    assert all(isinstance(route.view, ModelView) for route in of_kind(app, "action"))
