"""A registry that hangs or refuses connections, seen from every route of the app.

Users must get an answer within a bound (the registry client's per-request timeout, cut to the
page's overall deadline), and no one but an admin may learn the registry's internal URL or the
HTTP library's error text (`HTTPConnectionPool(host=...): Max retries exceeded ...`).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portus_fab.catalog import repositories
from tests.conftest import add_user, make_app
from tests.support.hanging import HangingServer
from tests.support.wait import free_port

PASSWORD = "secret"
OWNER, ADMIN = "olivia", "boss"
REPOSITORY = f"{OWNER}/app"
TAGS = [f"t{n}" for n in range(1, 6)]  # five digests: a repository delete sends five DELETEs
TIMEOUT = 0.5  # PORTUS_REGISTRY_TIMEOUT and PORTUS_HEALTH_TIMEOUT
DEADLINE = 1.0  # PORTUS_REGISTRY_DEADLINE
# What a page may take at most: its deadline, one more read timeout, and the test client's work.
BOUND = DEADLINE + TIMEOUT + 1.5
# Texts that come from the HTTP library, never from portus_fab: a non-admin must see none.
LIBRARY_TEXTS = (
    "HTTPConnectionPool",
    "Max retries",
    "urllib3",
    "Read timed out",
    "NewConnectionError",
    "Connection refused",
    "registry unreachable",
)
GENERIC = "the registry did not answer; try again later"


@dataclass
class Stack:
    app: Flask
    registry_url: str
    hanging: HangingServer | None

    def client(self, username: str | None) -> FlaskClient:
        client = self.app.test_client()
        if username is not None:
            response = client.post("/login/", data={"username": username, "password": PASSWORD})
            assert response.status_code == 302 and "/login" not in response.headers["Location"]
        return client


def seed(app: Flask) -> None:
    add_user(app, OWNER, PASSWORD)  # owner of the personal namespace `olivia`
    add_user(app, ADMIN, PASSWORD, admin=True)
    at = dt.datetime(2024, 1, 1, 12, 0, 0)
    pushes = [
        repositories.Push(REPOSITORY, tag, f"sha256:{n:064x}", None, OWNER, at)
        for n, tag in enumerate(TAGS, start=1)
    ]
    repositories.record_pushes(app.appbuilder.session, pushes)
    app.appbuilder.session.commit()


@pytest.fixture(params=["hanging", "refusing"])
def stack(request: pytest.FixtureRequest, template_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    hanging = HangingServer().start() if request.param == "hanging" else None
    url = hanging.url if hanging else f"http://127.0.0.1:{free_port()}"
    app = make_app(
        template_dir,
        tmp_path / "data",
        PORTUS_REGISTRY_URL=url,
        PORTUS_REGISTRY_TIMEOUT=str(TIMEOUT),
        PORTUS_REGISTRY_DEADLINE=str(DEADLINE),
        PORTUS_HEALTH_TIMEOUT=str(TIMEOUT),
        # A 500 is rendered as the user would see it, not raised into the test.
        PROPAGATE_EXCEPTIONS=False,
    )
    try:
        with app.app_context():
            seed(app)
            yield Stack(app, url, hanging)
            app.appbuilder.session.remove()
    finally:
        if hanging:
            hanging.stop()


def visible_text(body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def leaks(stack: Stack, body: str) -> list[str]:
    """The internal registry URL or library texts in a page a non-admin got."""
    text = visible_text(body)
    found = [marker for marker in LIBRARY_TEXTS if marker in body or marker in text]
    if stack.registry_url in body or stack.registry_url in text:
        found.append(stack.registry_url)
    return found


def timed(client: FlaskClient, method: str, url: str, **kwargs: object) -> tuple[float, str]:
    started = time.monotonic()
    response = client.open(url, method=method, follow_redirects=True, **kwargs)
    return time.monotonic() - started, response.get_data(as_text=True)


def test_deleting_many_digests_is_bounded_by_one_deadline(stack: Stack) -> None:
    """Five digests against a hanging registry took 5 x 10 s; now the page's deadline bounds them
    all, and the owner learns that the registry did not answer, not where it is."""
    client = stack.client(OWNER)
    elapsed, body = timed(client, "POST", f"/registry/delete/{REPOSITORY}")
    assert elapsed < BOUND, f"the delete took {elapsed:.1f} s"
    assert GENERIC in visible_text(body)
    assert not leaks(stack, body)
    if stack.hanging:
        # At most one connection per request sent before the deadline ran out.
        assert 1 <= stack.hanging.accepted <= DEADLINE / TIMEOUT + 1
    # Nothing was removed here: the registry never confirmed a delete.
    page = client.get(f"/registry/repositories/{REPOSITORY}").get_data(as_text=True)
    assert all(f"/registry/tags/{REPOSITORY}/{tag}" in page for tag in TAGS)


def test_one_tag_delete_is_bounded_too(stack: Stack) -> None:
    elapsed, body = timed(
        stack.client(OWNER), "POST", f"/registry/delete/{REPOSITORY}", data={"tag": "t1"}
    )
    assert elapsed < BOUND
    assert GENERIC in visible_text(body)
    assert not leaks(stack, body)


def test_admins_see_the_detail(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    elapsed, body = timed(stack.client(ADMIN), "POST", f"/registry/delete/{REPOSITORY}")
    assert elapsed < BOUND
    text = visible_text(body)
    assert "The delete did not finish" in text and stack.registry_url in text
    # The full detail goes to the log whoever asked.
    stack.client(OWNER).post(f"/registry/delete/{REPOSITORY}")
    logged = [r.getMessage() for r in caplog.records if "delete of" in r.getMessage()]
    assert any(stack.registry_url in m and OWNER in m for m in logged), logged


# --- every route ---------------------------------------------------------------------------------

SAMPLE_VALUES = {
    "name": REPOSITORY,
    "tag": TAGS[0],
    # No such row: a walk that deleted users or roles would end its own rights mid-way.
    "pk": "999999",
    "role_id": "999999",
    "locale": "en",
    "group_by": "active",
    "filename": "x.csv",
}
# Logging out would end the walk's session; it talks to nothing else.
NOT_WALKED = {"AuthDBView.logout", "static", "appbuilder.static"}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every route, its arguments filled with sample values."""
    walked = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_WALKED:
            continue
        url = rule.rule
        for argument in rule.arguments:
            url = re.sub(rf"<(?:[^:<>]+:)?{argument}>", SAMPLE_VALUES[argument], url)
        walked += [(rule.endpoint, method, url) for method in sorted(rule.methods or ())]
    return [(e, m, u) for e, m, u in walked if m not in {"HEAD", "OPTIONS"}]


@pytest.mark.parametrize("who", [None, OWNER, ADMIN], ids=["anonymous", "owner", "admin"])
def test_every_route_answers_within_the_bound_and_names_no_internal_url(
    stack: Stack, who: str | None
) -> None:
    """Walks every route (GET and every other method it takes) as each kind of caller; whatever
    talks to the registry on a user's behalf must answer in time, and only admins may see the
    registry's URL or the library's error text."""
    walked = routes(stack.app)
    assert any(endpoint == "BrowseView.delete" for endpoint, _, _ in walked)
    slow, leaked = [], []
    for endpoint, method, url in walked:
        # A fresh session per route: a route that changes the caller's state cannot skew the rest.
        elapsed, body = timed(stack.client(who), method, url)
        if elapsed >= BOUND:
            slow.append(f"{method} {url} ({endpoint}): {elapsed:.1f} s")
        if who != ADMIN and (found := leaks(stack, body)):
            leaked.append(f"{method} {url} ({endpoint}): {found}")
    assert not slow, slow
    assert not leaked, leaked
    if stack.hanging and who != ADMIN:
        # The walk did reach the registry (the delete, /health): it proved something.
        assert stack.hanging.accepted >= 1
