"""A process that already built an app (its ORM hooks are global) builds a second one on an
empty database: FAB writes its roles before the add-on creates its tables, and that must work."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import inspect

from run import create_app
from tests.conftest import app_config


def test_a_second_app_on_an_empty_database_keeps_fabs_roles(app: Flask, tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    data_dir.mkdir()
    fresh = create_app(app_config(data_dir))
    with fresh.app_context():
        sm = fresh.appbuilder.sm
        assert sm.find_role(sm.auth_role_admin) is not None
        assert sm.find_role(sm.auth_role_public) is not None
        assert (
            "portus_policy_epoch" in inspect(fresh.appbuilder.session.get_bind()).get_table_names()
        )
        fresh.appbuilder.session.remove()
