"""In a host FAB app that set up CSRFProtect and Flask-Limiter itself, the add-on reuses them:
no second CSRFProtect, the host's limiter storage counts the failed sign-ins, and the
registry's blueprints stay exempt."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_wtf.csrf import CSRFProtect

from tests.conftest import IsolatedClient, add_user, app_config
from tests.support.routes import ADMIN, PASSWORD, csrf_token, sign_in


@pytest.fixture
def host_app(template_dir: Path, tmp_path: Path) -> Iterator[tuple[Flask, CSRFProtect]]:
    data_dir = tmp_path / "data"
    shutil.copytree(template_dir, data_dir)
    app = Flask("host")
    app.config.from_object("config")
    app.config.update(
        app_config(
            data_dir,
            FAB_UPDATE_PERMS=False,
            WTF_CSRF_ENABLED=True,
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI="memory://",
            PORTUS_LOGIN_RATE_LIMIT="2 per hour",
        )
    )
    app.test_client_class = IsolatedClient
    csrf = CSRFProtect(app)  # the host's, before AppBuilder
    db = SQLA()
    with app.app_context():
        db.init_app(app)
        AppBuilder().init_app(app, db.session)
        add_user(app, ADMIN, PASSWORD, admin=True)
        yield app, csrf
        app.appbuilder.session.remove()


def test_the_hosts_csrf_and_limiter_are_reused(host_app: tuple[Flask, CSRFProtect]) -> None:
    app, host_csrf = host_app
    assert app.extensions["csrf"] is host_csrf
    assert len(app.extensions["limiter"]) == 1  # FAB's, enabled by the host, not a second one
    admin = sign_in(app, ADMIN)
    assert admin.post("/users/delete/1").status_code == 400
    assert app.appbuilder.sm.find_user(username=ADMIN) is not None
    events = app.test_client().post(
        "/v2/webhooks/events",
        json={"events": []},
        headers={"Authorization": "Bearer test-webhook-secret"},
    )
    assert events.status_code == 200
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"

    def sign_in_status(password: str) -> int:
        token = csrf_token(attacker.get("/login/").get_data(as_text=True))
        data = {"username": ADMIN, "password": password, "csrf_token": token}
        return attacker.post("/login/", data=data).status_code

    assert [sign_in_status("guess"), sign_in_status("guess")] == [302, 302]
    assert sign_in_status(PASSWORD) == 429
