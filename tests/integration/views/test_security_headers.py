"""Every answer forbids MIME sniffing, and every HTML answer forbids framing by any site (the
one-button delete confirmation must not be clickable through someone else's page): checked on
every GET route of the app, signed in and anonymous, plus error pages and redirects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_app
from tests.support.routes import ADMIN, build_world, fill, rules, sign_in


@pytest.fixture
def world_app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", WTF_CSRF_ENABLED=True)
    with app.app_context():
        build_world(app)
        yield app
        app.appbuilder.session.remove()


def unguarded(client: FlaskClient, method: str, url: str) -> str | None:
    """What is missing from one answer's headers, or None."""
    answer = client.open(url, method=method)
    answer.close()  # static files are streamed
    headers = answer.headers
    missing = []
    if headers.get("X-Content-Type-Options") != "nosniff":
        missing.append("nosniff")
    if answer.mimetype == "text/html":
        if headers.get("X-Frame-Options") != "DENY":
            missing.append("X-Frame-Options")
        policies = headers.getlist("Content-Security-Policy")
        if not any("frame-ancestors 'none'" in policy for policy in policies):
            missing.append("frame-ancestors")
    return f"{method} {url} ({answer.status_code}): {missing}" if missing else None


def test_every_answer_forbids_framing_and_sniffing(world_app: Flask) -> None:
    visitors = {"admin": sign_in(world_app, ADMIN), "anonymous": world_app.test_client()}
    requests = [
        ("GET", url)
        for rule in rules(world_app)
        # FAB's file download reads UPLOAD_FOLDER, which portus_fab never configures.
        if "GET" in (rule.methods or set()) and not rule.endpoint.endswith(".download")
        for url in fill(world_app, rule)
    ]
    requests += [
        ("GET", "/no/such/page"),  # 404
        ("GET", "/v2/webhooks/events"),  # 405
        ("POST", "/users/delete/1"),  # 400: no CSRF token
        ("GET", "/static/appbuilder/css/ab.css"),  # a static file
    ]
    problems = [
        f"{who}: {problem}"
        for who, client in visitors.items()
        for method, url in requests
        if (problem := unguarded(client, method, url))
    ]
    assert not problems, "\n".join(problems)
    assert len(requests) > 60  # the walk really walked


def test_a_policy_that_already_names_frame_ancestors_is_kept(world_app: Flask) -> None:
    """A host app's own policy on where it may be framed wins; ours is added to the others."""

    @world_app.route("/host-page")
    def host_page() -> tuple[str, int, dict[str, str]]:
        return "<p>host</p>", 200, {"Content-Security-Policy": "frame-ancestors 'self'"}

    answer = world_app.test_client().get("/host-page")
    assert answer.headers.getlist("Content-Security-Policy") == ["frame-ancestors 'self'"]
    assert answer.headers["X-Frame-Options"] == "DENY"
