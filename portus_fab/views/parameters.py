"""FAB's own request parameters, checked before FAB parses them.

FAB turns a malformed list parameter (`page_<View>=abc`, a page beyond the database's integer
range, an unknown `_oc_<View>` column), an id out of range, an unknown action, chart or file, or
an API `q` it cannot parse into an uncaught exception: a 500. One `before_request` check, for
every FAB view registered (portus_fab's screens and FAB's security views and APIs alike), answers
400 for a malformed parameter and 404 for an id or name that cannot exist, before FAB runs. The
check reads only the request and the views' declarations: what it answers never depends on rows,
except for an action the user may run, whose row must exist (FAB's action routes skip the views'
base filters and would hand a missing or hidden row to the action).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import prison
from flask import Flask, Response, abort, current_app, jsonify, request
from flask_appbuilder import ModelView
from flask_appbuilder.api import BaseApi
from flask_appbuilder.baseviews import AbstractViewApi, BaseModelView
from flask_appbuilder.charts.views import GroupByChartView
from sqlalchemy import JSON, BigInteger

# The largest integer the databases portus_fab runs on store (SQLite's and PostgreSQL's BIGINT):
# SQLite's driver raises OverflowError for a bigger bound value.
DB_INTEGER_MAX = 2**63 - 1
# PostgreSQL's INTEGER, the type of every id column here: no row has a larger id, and PostgreSQL
# refuses to compare an INTEGER with text naming a larger number.
ID_MAX = 2**31 - 1
# FAB's list widget offers 25, 50, 75 and 100 rows; more would load a whole table per request.
PAGE_SIZE_MAX = 100
# Keeps page * page size an OFFSET the database accepts.
PAGE_MAX = DB_INTEGER_MAX // PAGE_SIZE_MAX
ORDER_DIRECTIONS = ("asc", "desc")

# FAB's own patterns (flask_appbuilder/urltools.py), unanchored as there: FAB int()s the value of
# every argument whose name merely contains "page_" or "psize_".
PAGE_ARG = re.compile("page_(.*)")
PAGE_SIZE_ARG = re.compile("psize_(.*)")
ORDER_COLUMN_ARG = re.compile("_oc_(.*)")
ORDER_DIRECTION_ARG = re.compile("_od_(.*)")
FILTER_ARG = re.compile(r"_flt_(\d)_(.*)")
DIGITS = re.compile(r"[0-9]+")
# What both SQLite and PostgreSQL read as a boolean; FAB's own search form sends "y".
BOOLEAN_LITERALS = frozenset({"y", "n", "yes", "no", "t", "f", "true", "false", "1", "0"})


class BadParameter(Exception):
    """The status (400 malformed, 404 cannot exist) and the reason shown to the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def install_parameter_checks(app: Flask, appbuilder: Any) -> None:
    """Check every request routed to a FAB view; views are looked up when first needed, so
    that views a host app adds after the add-ons are checked too."""
    views: dict[str, AbstractViewApi] = {}
    by_class: dict[str, AbstractViewApi] = {}

    def resolve(blueprint: str) -> AbstractViewApi | None:
        if not views:
            for view in appbuilder.baseviews:
                if view.blueprint is not None:
                    views[view.blueprint.name] = view
                by_class.setdefault(type(view).__name__, view)
                if isinstance(view, BaseModelView):
                    _keep_sortable_columns(view)
        return views.get(blueprint)

    @app.before_request
    def check_fab_parameters() -> Response | None:
        view = resolve(request.blueprint) if request.blueprint else None
        if view is None:
            return None
        try:
            check_request(view, by_class)
        except BadParameter as bad:
            if isinstance(view, BaseApi):
                response = jsonify(message=bad.message)
                response.status_code = bad.status
                return response
            abort(bad.status, description=bad.message)
        return None


def check_request(view: AbstractViewApi, views_by_class: dict[str, AbstractViewApi]) -> None:
    """Raise BadParameter for the first parameter of the request FAB could not handle."""
    if isinstance(view, BaseApi):
        _check_api_query(request.args.get("q"))
    else:
        _check_list_args(views_by_class)
        _check_filter_args(view)
    _check_path_ids(view)
    route = (request.endpoint or "").rpartition(".")[2]
    if isinstance(view, ModelView):
        if route == "action":
            _check_action(view, request.view_args["name"], [request.view_args["pk"]], single=True)
        elif route == "action_post" and request.method == "POST":
            name = request.form.get("action")
            if not name:
                raise BadParameter(400, "no action named")
            _check_action(view, name, request.form.getlist("rowid"), single=False)
        elif route == "download" and not current_app.config.get("UPLOAD_FOLDER"):
            raise BadParameter(404, "no files are kept here")
    if isinstance(view, GroupByChartView) and "group_by" in (request.view_args or {}):
        group_by = request.view_args["group_by"]
        if not (DIGITS.fullmatch(group_by) and int(group_by) < len(view.definitions)):
            raise BadParameter(404, f"no chart {group_by!r}")


def _whole_number(name: str, text: str, low: int, high: int) -> None:
    if not (DIGITS.fullmatch(text) and low <= int(text) <= high):
        raise BadParameter(400, f"{name} must be a whole number from {low} to {high}")


def _check_list_args(views_by_class: dict[str, AbstractViewApi]) -> None:
    for arg, value in request.args.items(multi=True):
        if PAGE_ARG.search(arg):
            _whole_number(arg, value, 0, PAGE_MAX)
        if PAGE_SIZE_ARG.search(arg):
            _whole_number(arg, value, 1, PAGE_SIZE_MAX)
        if ORDER_DIRECTION_ARG.search(arg) and value not in ORDER_DIRECTIONS:
            raise BadParameter(400, f"{arg} must be asc or desc")
        ordered = ORDER_COLUMN_ARG.search(arg)
        if ordered:
            list_name = ordered.group(1)
            direction = request.args.get(f"_od_{list_name}")
            if direction not in ORDER_DIRECTIONS:
                raise BadParameter(400, f"_od_{list_name} must be asc or desc")
            listed = views_by_class.get(list_name)
            # A list that no view shows: FAB ignores its order, and so does this check.
            if isinstance(listed, BaseModelView) and value not in _order_columns(listed):
                raise BadParameter(400, f"the list cannot be sorted by {value!r}")


def _check_filter_args(view: AbstractViewApi) -> None:
    """FAB int()s a filter's value on an integer column and hands the database any size, and
    hands it any text for a boolean column or a related row's integer id (PostgreSQL refuses
    what is no boolean or no integer)."""
    datamodel = getattr(view, "datamodel", None)
    if datamodel is None:
        return
    for arg, value in request.args.items(multi=True):
        filtered = FILTER_ARG.search(arg)
        if filtered and datamodel.is_relation(filtered.group(2)):
            # The value is a related row's id: PostgreSQL refuses text for an integer key.
            related = datamodel.get_related_interface(filtered.group(2))
            if _id_max(related) is not None and not _valid_id(value, _id_max(related)):
                raise BadParameter(400, f"{arg} must be a row id")
            continue
        if filtered and datamodel.is_boolean(filtered.group(2)):
            if value.strip().lower() not in BOOLEAN_LITERALS:
                raise BadParameter(400, f"{arg} must be y or n")
            continue
        if not (filtered and datamodel.is_integer(filtered.group(2))):
            continue
        try:
            number = int(value)
        except ValueError:
            continue  # FAB filters by nothing then
        if abs(number) > DB_INTEGER_MAX:
            raise BadParameter(400, f"{arg} is at most {DB_INTEGER_MAX}")


def _keep_sortable_columns(view: BaseModelView) -> None:
    """FAB offers sort links for listed columns the database cannot order by: a JSON column
    (a tag's platforms; PostgreSQL has no ordering for JSON) and a Python property (a robot's
    full name): a 500 on a click. Those links go, and `_oc_` refuses them."""
    columns = view.datamodel.list_columns
    view.order_columns = [
        name
        for name in _order_columns(view)
        if "." in name  # a related row's column, which FAB joins to order by
        or (name in columns and not isinstance(getattr(columns[name], "type", None), JSON))
    ]


def _order_columns(view: BaseModelView) -> list[str]:
    return list(getattr(view, "order_columns", None) or [])


def _id_max(datamodel: Any) -> int | None:
    """The largest id of the model's integer primary key; None for other keys."""
    if datamodel is None or datamodel.is_pk_composite():
        return None
    name = datamodel.get_pk_name()
    if not datamodel.is_integer(name):
        return None
    big = isinstance(datamodel.list_columns[name].type, BigInteger)
    return DB_INTEGER_MAX if big else ID_MAX


def _valid_id(value: Any, high: int) -> bool:
    if isinstance(value, int):
        return 0 <= value <= high
    return bool(DIGITS.fullmatch(str(value))) and int(value) <= high


def _check_path_ids(view: AbstractViewApi) -> None:
    key_max = _id_max(getattr(view, "datamodel", None))
    for name, value in (request.view_args or {}).items():
        numeric = isinstance(value, int) or (name == "pk" and key_max is not None)
        if numeric and not _valid_id(value, key_max or ID_MAX):
            raise BadParameter(404, f"no row {value}")


def _check_action(view: ModelView, name: str, pks: list[str], *, single: bool) -> None:
    action = view.actions.get(name)
    if action is None:
        raise BadParameter(404, f"no action {name!r}")
    if not (action.single if single else action.multiple):
        raise BadParameter(400, f"action {name!r} is not for {'one' if single else 'many'} rows")
    high = _id_max(view.datamodel)
    if high is not None and not all(_valid_id(pk, high) for pk in pks):
        raise BadParameter(404, "no such row")
    # Only for a user who may run the action: to others FAB answers with a refusal, and a 404
    # would tell them which rows exist.
    if view.appbuilder.sm.has_access(
        view.get_action_permission_name(name), view.class_permission_name
    ):
        for pk in pks:
            if view.datamodel.get(pk, view._base_filters) is None:
                raise BadParameter(404, "no such row")


def _check_api_query(value: str | None) -> None:
    """Parsed as FAB does (rison, else JSON), whose own parse lets a recursion error through;
    FAB bounds neither the page nor the numbers in filters."""
    if not value:
        return
    # Broad excepts: both parsers raise more than their documented errors on hostile input
    # ("((" exhausts prison's recursion).
    try:
        query = prison.loads(value)
    except Exception:
        try:
            query = json.loads(urllib.parse.parse_qs(f"q={value}")["q"][0])
        except Exception:
            raise BadParameter(400, "q is neither rison nor JSON") from None
    if isinstance(query, dict) and "page" in query:
        page = query["page"]
        if not (isinstance(page, int) and 0 <= page <= PAGE_MAX):
            raise BadParameter(400, f"page must be a whole number from 0 to {PAGE_MAX}")
    if any(abs(number) > DB_INTEGER_MAX for number in _integers(query)):
        raise BadParameter(400, f"numbers in q are at most {DB_INTEGER_MAX}")


def _integers(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _integers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _integers(item)
