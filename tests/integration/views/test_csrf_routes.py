"""Every state-changing route refuses a forged request: walks every rule of the app's url_map,
signed in as an admin, with CSRF on (tests/conftest.py turns it off for the other tests).

Refused means the database is unchanged (every row of every table, compared before and after)
and the admin is still signed in, and:

- a GET to a route that changes state answers 405, a redirect (FAB's "access denied" for its
  deletes and actions), or a form page whose form posts back with a CSRF token (add, edit, the
  delete and sign-out confirmations);
- a POST, PUT, PATCH or DELETE without the token answers 400, on every route, FAB's REST API
  (`/api/`) included: it also accepts the session cookie, so a call with no credentials of its
  own (no `Authorization` header) needs the token as well;
- only the registry's blueprints (the allow-list below) are exempt, and they work without a token.

A GET to any other route changes nothing either, and a new route whose arguments the walk cannot
fill, or a new blueprint, fails the walk until it is taught here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.routing import Rule

from tests.conftest import make_app
from tests.support.routes import (
    ADMIN,
    PASSWORD,
    attempt,
    build_world,
    csrf_token,
    fill,
    first_pk,
    model_views,
    rules,
    sign_in,
    signed_in,
    snapshot,
)

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Blueprints called by the registry and docker clients, without a browser session.
EXEMPT_BLUEPRINTS = {"portus_token", "portus_webhook", "portus_health"}
# Blueprints of the walk: a new one fails the walk until someone decides which kind it is.
KNOWN_BLUEPRINTS = EXEMPT_BLUEPRINTS | {"appbuilder", "portus_fab_templates"}


@pytest.fixture
def csrf_app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", WTF_CSRF_ENABLED=True)
    with app.app_context():
        build_world(app)
        yield app
        app.appbuilder.session.remove()


def mutates(app: Flask, rule: Rule) -> bool:
    methods = rule.methods or set()
    return bool(methods & MUTATING_METHODS) or rule.endpoint == logout_endpoint(app)


def logout_endpoint(app: Flask) -> str:
    return f"{app.appbuilder.sm.auth_view.endpoint}.logout"


def test_the_walk_knows_every_blueprint(csrf_app: Flask) -> None:
    """Our blueprints and FAB's views are all walked; a new plain blueprint must be classified."""
    views = {view.endpoint for view in csrf_app.appbuilder.baseviews}
    unknown = sorted(name for name in csrf_app.blueprints if name not in KNOWN_BLUEPRINTS | views)
    assert not unknown, f"new blueprints: decide whether they are exempt: {unknown}"
    # The exempt blueprints change state in two places only: the registry's notifications, and
    # the OAuth2 form of the token endpoint (a refresh token when asked; credentials in the body,
    # never the session, so a forged request proves no one).
    exempt_changes = {
        rule.rule
        for rule in rules(csrf_app)
        if rule.endpoint.rsplit(".", 1)[0] in EXEMPT_BLUEPRINTS and mutates(csrf_app, rule)
    }
    assert exempt_changes == {"/v2/webhooks/events", "/v2/token"}


def test_every_state_change_refuses_get_and_a_post_without_token(csrf_app: Flask) -> None:
    admin = sign_in(csrf_app, ADMIN)
    database = snapshot(csrf_app)
    # Planned before the first request, so a route that did delete cannot hide the next one.
    plan = [
        (method, url)
        for rule in rules(csrf_app)
        if rule.endpoint.rsplit(".", 1)[0] not in EXEMPT_BLUEPRINTS and mutates(csrf_app, rule)
        for url in fill(csrf_app, rule)
        for method in sorted((rule.methods or set()) & (MUTATING_METHODS | {"GET"}))
    ]
    failures: list[str] = []
    for method, url in plan:
        before = database()
        status, body = attempt(admin, method, url)
        if method == "GET":
            # A page, if any, can only lead to a POST with the token.
            refused = status != 200 or 'name="csrf_token"' in body
        else:
            refused = status == 400 and "CSRF" in body
        unchanged = database() == before
        still_in = signed_in(admin)
        if not (refused and unchanged and still_in):
            failures.append(
                f"{method} {url}: {status}"
                f"{'' if unchanged else ', changed the database'}"
                f"{'' if still_in else ', signed the admin out'}"
            )
        if not still_in:
            admin = sign_in(csrf_app, ADMIN)  # so the rest of the walk still counts
    assert not failures, "\n".join(failures)
    # The routes of the issue are among those walked.
    for expected in (
        "/users/delete/",
        "/roles/delete/",
        "/grantview/delete/",
        "/teammemberview/delete/",
        "/namespaceview/delete/",
        "/teamview/delete/",
        "/registry/delete/devteam/devapp",
        "/logout/",
        "/login/",
        "/resetmypassword/form",
        "/userinfoeditview/form",
        "/users/action/",
        "/sign-in-locks/lift",
        "/refresh-tokens/revoke",
        "/access-tokens/create",
        "/access-tokens/revoke",
        "/robotview/new",
        "/robotview/rotate/",
        "/robotview/disable/",
        "/robotview/enable/",
        "/robotview/remove/",
        "/robotgrantview/delete/",
    ):
        assert any(expected in url for _, url in plan), expected


def test_no_get_anywhere_changes_anything(csrf_app: Flask) -> None:
    """The walk's other half: a GET-only route that changed state would be a mutation the
    CSRF check never sees."""
    admin = sign_in(csrf_app, ADMIN)
    database = snapshot(csrf_app)
    changed = []
    for rule in rules(csrf_app):
        # FAB's file download reads UPLOAD_FOLDER, which portus_fab never configures or writes.
        if "GET" not in (rule.methods or set()) or rule.endpoint.endswith(".download"):
            continue
        for url in fill(csrf_app, rule):
            before = database()
            attempt(admin, "GET", url)
            if database() != before:
                changed.append(url)
    assert not changed, changed
    assert signed_in(admin)


def test_a_delete_with_its_token_still_works(csrf_app: Flask) -> None:
    """The refusals above are the token's doing: the same delete, from FAB's list page's
    form with its token, deletes."""
    admin = sign_in(csrf_app, ADMIN)
    pk = first_pk(csrf_app, "GrantView")
    token = csrf_token(admin.get("/grantview/list/").get_data(as_text=True))
    answer = admin.post(f"/grantview/delete/{pk}", data={"csrf_token": token})
    assert answer.status_code == 302
    view = model_views(csrf_app)["GrantView"]
    csrf_app.appbuilder.session.expire_all()
    assert view.datamodel.get(pk) is None


def test_sign_out_needs_the_confirmation_form(csrf_app: Flask) -> None:
    admin = sign_in(csrf_app, ADMIN)
    page = admin.get("/logout/")
    assert page.status_code == 200 and signed_in(admin)
    answer = admin.post("/logout/", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert answer.status_code == 302
    assert not signed_in(admin)


def test_the_registry_blueprints_need_no_token(csrf_app: Flask) -> None:
    """The exemption is real: the registry's notification and docker's token request work
    with CSRF on, without a session."""
    client = csrf_app.test_client()
    events = client.post(
        "/v2/webhooks/events",
        json={"events": []},
        headers={
            "Authorization": "Bearer test-webhook-secret",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
    )
    assert events.status_code == 200, events.get_data(as_text=True)
    token = client.get("/v2/token?service=127.0.0.1:5000", auth=(ADMIN, PASSWORD))
    assert token.status_code == 200, token.get_data(as_text=True)
    form = {"service": "127.0.0.1:5000", "client_id": "containerd-client"}
    oauth = client.post(
        "/v2/token",
        data={**form, "grant_type": "password", "username": ADMIN, "password": PASSWORD},
    )
    assert oauth.status_code == 200, oauth.get_data(as_text=True)
