"""`flask portus doctor` and `/health` report the directory of an AUTH_LDAP app, reachable or
not (a bind as AUTH_LDAP_BIND_USER within the health timeout), without turning `/health`'s status
red: down, the directory fails new sign-ins only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.ops.health import ESSENTIAL
from tests.conftest import make_app
from tests.support.ldap_apps import ldap_app
from tests.support.slapd import ALICE, Slapd


@pytest.fixture
def app(template_dir: Path, tmp_path: Path, ldap_directory: Slapd) -> Iterator[Flask]:
    app = ldap_app(template_dir, tmp_path, ldap_directory, PORTUS_HEALTH_TIMEOUT="1")
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def doctor_line(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["portus", "doctor"])
    [line] = [line for line in result.output.splitlines() if " directory: " in line]
    return line


def signed_in_admin(app: Flask) -> FlaskClient:
    """Alice, an admin through the ops group: her session holds her once the directory is gone."""
    client = app.test_client()
    answer = client.post("/login/", data={"username": ALICE.uid, "password": ALICE.password})
    assert answer.status_code == 302 and "/login" not in answer.headers["Location"]
    return client


def directory_check(admin: FlaskClient) -> dict[str, object]:
    checks = admin.get("/health?fresh=1").get_json()["checks"]
    [check] = [check for check in checks if check["name"] == "directory"]
    return check


def test_doctor_reports_the_directory(app: Flask, ldap_directory: Slapd) -> None:
    line = doctor_line(app)
    assert line.startswith("ok   directory:"), line
    assert f"{ldap_directory.url} answers (bound as cn=reader" in line
    ldap_directory.stop()
    line = doctor_line(app)
    assert line.startswith("FAIL directory: unreachable"), line


def test_health_reports_the_directory_without_failing_for_it(
    app: Flask, ldap_directory: Slapd
) -> None:
    assert "directory" not in ESSENTIAL
    admin = signed_in_admin(app)
    assert directory_check(admin)["ok"] is True
    ldap_directory.stop()
    check = directory_check(admin)
    assert check["ok"] is False and "unreachable" in str(check["detail"])


def test_an_app_without_ldap_has_no_directory_check(template_dir: Path, tmp_path: Path) -> None:
    app = make_app(template_dir, tmp_path / "data")
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["portus", "doctor"])
        assert " directory: " not in result.output
        app.appbuilder.session.remove()
