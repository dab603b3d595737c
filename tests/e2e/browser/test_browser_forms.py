"""The guarded forms in a real Chromium, CSRF on: FAB's delete button (its modal posts a form with
the token), signing out through the confirmation, a user changing their own password from the
profile page, and a page of another site that tries to frame the app.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; no browser is downloaded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright

from portus_fab.access import management
from portus_fab.models import Team
from tests.conftest import add_user, make_app
from tests.e2e.browser.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.conftest import ServedApp
from tests.support.wait import free_port, wait_until

pytestmark = pytest.mark.e2e

ADMIN = ("boss", "boss-pw")
USER = ("olivia", "olivia-pw")
NEW_PASSWORD = "olivia-new-pw"


@dataclass
class Served:
    app: Flask
    url: str


@pytest.fixture(scope="module")
def served(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    app = make_app(
        template_dir,
        tmp_path_factory.mktemp("forms") / "data",
        WTF_CSRF_ENABLED=True,
        PORTUS_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    with app.app_context():
        add_user(app, *ADMIN, admin=True)
        add_user(app, *USER)
        management.create_team(app.appbuilder.session, "doomed", "to be deleted")
        app.appbuilder.session.commit()
        app.appbuilder.session.remove()
    with ServedApp(app, port) as server:
        yield Served(app, server.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, served: Served, creds: tuple[str, str]) -> None:
    page.goto(f"{served.url}/login/")
    page.locator("input#username").fill(creds[0])
    page.locator("input#password").fill(creds[1])
    page.locator("form[name=login] input[type=submit]").click()
    expect(page.locator("a[href*='/logout']")).to_be_attached()


def team_exists(app: Flask, name: str) -> bool:
    with app.app_context():
        session = app.appbuilder.session
        found = session.query(Team).filter_by(name=name).first() is not None
        session.remove()
    return found


def test_fab_delete_button_then_sign_out(page: Page, served: Served) -> None:
    sign_in(page, served, ADMIN)
    page.goto(f"{served.url}/teamview/list/")
    page.locator("tr", has_text="doomed").locator("a[id^='btn-delete-']").click()
    page.locator("#modal-confirm-ok").click()
    expect(page.locator("tr", has_text="doomed")).to_have_count(0)
    wait_until(lambda: not team_exists(served.app, "doomed"), message="team not deleted")

    page.goto(f"{served.url}/logout/")  # the navbar's link
    page.locator("#portus-sign-out").click()
    page.goto(f"{served.url}/users/userinfo/")
    expect(page).to_have_url(re.compile(r"/login/"))


def test_a_user_changes_their_own_password(page: Page, served: Served) -> None:
    sign_in(page, served, USER)
    page.goto(f"{served.url}/users/userinfo/")
    page.get_by_role("link", name="Reset my password").click()
    expect(page).to_have_url(re.compile(r"/resetmypassword/form"))
    page.locator("input#password").fill(NEW_PASSWORD)
    page.locator("input#conf_password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".alert", has_text="Password Changed")).to_be_visible()
    with served.app.app_context():
        sm = served.app.appbuilder.sm
        assert sm.auth_user_db(USER[0], NEW_PASSWORD) is not None
        served.app.appbuilder.session.remove()


class _FramingPage(BaseHTTPRequestHandler):
    """Another site's page that frames the app's delete confirmation and one of its own."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/own":
            body = b"<p id='own'>framed fine</p>"
        else:
            body = (
                f"<iframe id='app' src='{self.target}'></iframe>"
                "<iframe id='own' src='/own'></iframe>"
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_another_site_cannot_frame_the_app(page: Page, served: Served) -> None:
    sign_in(page, served, ADMIN)
    _FramingPage.target = f"{served.url}/teamview/list/"
    attacker = ThreadingHTTPServer(("127.0.0.1", free_port()), _FramingPage)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{attacker.server_port}/")
        # The control: the attacker's own page does render inside a frame.
        expect(page.frame_locator("iframe#own").locator("#own")).to_be_visible()
        framed = page.frame_locator("iframe#app")
        expect(framed.locator("a[href*='/logout']")).to_have_count(0)
        # Chromium refused to render it: the frame holds its error page, not the app.
        urls = wait_until(
            lambda: (
                [f.url for f in page.frames if f.url.startswith("chrome-error:")]
                and [f.url for f in page.frames]
            ),
            message="the app's frame never settled",
        )
        assert not any(url.startswith(served.url) for url in urls), urls
    finally:
        attacker.shutdown()
        attacker.server_close()
