"""The robot screens in a real Chromium, CSRF on: a namespace owner creates a robot and sees its
secret once, rotates it, disables and deletes it, each a form post with its token, and the token
endpoint (over HTTP) follows every step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from portus_fab.access import management
from tests.conftest import add_user, make_app
from tests.e2e.browser.test_browser_forms import Served, browser, page, sign_in  # noqa: F401 - fixtures
from tests.e2e.conftest import ServedApp
from tests.support.wait import free_port

pytestmark = pytest.mark.e2e

OWNER = ("olga", "olga-pw")
SECRET = re.compile(r"pfrb_[0-9A-Za-z]{36}")


@pytest.fixture(scope="module")
def served(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    app = make_app(
        template_dir,
        tmp_path_factory.mktemp("robots") / "data",
        WTF_CSRF_ENABLED=True,
        PORTUS_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    with app.app_context():
        session = app.appbuilder.session
        owner = add_user(app, *OWNER)
        builds = management.create_namespace(session, "builds")
        management.set_grant(session, builds, "owner", user=owner)
        session.commit()
        session.remove()
    with ServedApp(app, port) as server:
        yield Served(app, server.url)


def token_status(served: Served, username: str, secret: str) -> int:
    return requests.get(f"{served.url}/v2/token", auth=(username, secret), timeout=10).status_code


def shown_secret(screen: Page) -> str:
    text = screen.locator("#portus-robot-secret-value").inner_text()
    found = SECRET.search(text)
    assert found, text
    return found.group(0)


def test_an_owner_manages_a_robot_from_the_screens(
    page: Page,  # noqa: F811 - the fixture imported above
    served: Served,
) -> None:
    sign_in(page, served, OWNER)
    page.goto(f"{served.url}/robotview/list/")
    page.locator("#portus-robot-new a").click()
    page.locator("select#namespace").select_option("builds")
    page.locator("input#name").fill("ci")
    page.locator("select#access").select_option("write")
    page.locator("#portus-robot-create").click()
    expect(page.locator("#portus-robot-username")).to_contain_text("builds+ci")
    secret = shown_secret(page)
    assert token_status(served, "builds+ci", secret) == 200

    page.get_by_role("link", name="Done").click()
    assert secret not in page.content()
    page.locator("#portus-robot-rotate").click()
    new = shown_secret(page)
    assert new != secret
    assert token_status(served, "builds+ci", secret) == 401
    assert token_status(served, "builds+ci", new) == 200

    page.get_by_role("link", name="Done").click()
    page.locator("#portus-robot-disable").click()
    expect(page.locator("#portus-robot-status")).to_have_text("disabled")
    assert token_status(served, "builds+ci", new) == 401
    page.locator("#portus-robot-enable").click()
    expect(page.locator("#portus-robot-status")).to_have_text("active")
    assert token_status(served, "builds+ci", new) == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#portus-robot-delete").click()
    expect(page.locator("body")).to_contain_text("Robot builds+ci deleted")
    assert token_status(served, "builds+ci", new) == 401
