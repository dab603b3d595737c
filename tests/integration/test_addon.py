"""The add-on really wires itself in (FAB would only log a failure in its hooks)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from portus_fab.core import EXTENSION
from portus_fab.models import GLOBAL_NAMESPACE, Grant, Namespace, NamespaceKind, Role, Visibility
from tests.conftest import add_user


def test_routes_and_commands_exist(app: Flask) -> None:
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/v2/token" in rules
    assert "portus" in app.cli.commands
    assert EXTENSION in app.extensions


def test_global_namespace_exists(app: Flask) -> None:
    namespace = app.appbuilder.session.scalar(
        select(Namespace).where(Namespace.kind == NamespaceKind.GLOBAL)
    )
    assert namespace.name == GLOBAL_NAMESPACE
    assert namespace.visibility == Visibility.PUBLIC


def test_new_user_gets_private_personal_namespace(app: Flask) -> None:
    user = add_user(app, "Alice.Smith")
    session = app.appbuilder.session
    namespace = session.scalar(select(Namespace).where(Namespace.user_id == user.id))
    assert namespace.name == "alice-smith"
    assert namespace.kind == NamespaceKind.PERSONAL
    assert namespace.visibility == Visibility.PRIVATE
    grant = session.scalar(select(Grant).where(Grant.namespace_id == namespace.id))
    assert (grant.user_id, grant.role) == (user.id, Role.OWNER)
