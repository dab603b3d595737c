"""The screens in a real Chromium: a repository pushed by skopeo through the real registry, seen
by its owner, hidden from another user, then published by an admin in the Namespaces CRUD screen.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; no browser is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from portus_fab.catalog import reporting
from portus_fab.catalog.enrichment import enrich
from portus_fab.core import portus
from tests.conftest import add_user
from tests.e2e.conftest import Stack, start_stack
from tests.support.oci import build_image_layout, build_index_layout
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOT = ROOT / "test-artifacts" / "repository-page.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPOSITORY = "alice/webapp"
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
ADMIN = ("admin", "admin-pw")


@dataclass
class World:
    stack: Stack
    registry_host: str

    @property
    def url(self) -> str:
        return self.stack.portus_url


def _show(stack: Stack, reference: str) -> dict[str, Any] | None:
    """What `portus repo show REFERENCE --json` prints (without parsing captured output)."""
    name, _, tag = reference.partition(":")
    with stack.app.app_context():
        core = portus()
        try:
            return reporting.describe(core.session, name, tag or None)
        finally:
            core.session.remove()


def _push(stack: Stack, source: str, reference: str, *, all_images: bool = False) -> str:
    """Push with skopeo as alice, wait for the webhook to store the tag, then enrich its digest
    as the worker would (no Celery worker runs here); return the digest."""
    pushed = stack.skopeo("alice").copy(source, reference, creds=ALICE, all_images=all_images)
    assert pushed.returncode == 0, pushed.stderr
    tag = wait_until(lambda: _show(stack, reference), message=f"{reference} never stored")
    repository, _, _ = reference.partition(":")
    with stack.app.app_context():
        core = portus()
        enrich(core.session, core.registry_client(), repository, tag["digest"])
        core.session.remove()
    enriched = _show(stack, reference)
    assert enriched is not None and enriched["enriched"], enriched
    return str(tag["digest"])


@pytest.fixture(scope="module")
def world(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("browser")
    # CSRF on, as in production (tests/conftest.py turns it off for the test client's tests).
    for stack in start_stack(template_dir, workdir, WTF_CSRF_ENABLED=True):
        with stack.app.app_context():
            for (name, password), admin in ((ALICE, False), (BOB, False), (ADMIN, True)):
                add_user(stack.app, name, password, admin=admin)
            host = portus().settings.registry_host
            stack.app.appbuilder.session.remove()
        single = workdir / "single"
        build_image_layout(single, "v1", files={"index.html": b"<h1>webapp</h1>\n"})
        multi = workdir / "multi"
        build_index_layout(multi, "multi", [("linux", "amd64", None), ("linux", "arm64", "v8")])
        _push(stack, f"{single}:v1", f"{REPOSITORY}:v1")
        _push(stack, f"{multi}:multi", f"{REPOSITORY}:multi", all_images=True)
        yield World(stack, host)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Opens pages, each in a fresh browser context (its own cookies): one per visitor."""
    contexts: list[Any] = []

    def opener() -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


def _login(page: Page, world: World, creds: tuple[str, str], then: str) -> None:
    """Sign in through FAB's login form, landing on `then` (FAB's `next`)."""
    page.goto(f"{world.url}/login/?next={then}")
    page.locator("input#username").fill(creds[0])
    page.locator("input#password").fill(creds[1])
    page.locator("form[name=login] input[type=submit]").click()
    expect(page).to_have_url(f"{world.url}{then}")
    expect(page.locator("a[href*='/logout']")).to_be_attached()


def _explore(page: Page, world: World) -> None:
    if page.url != f"{world.url}/registry/":
        page.goto(f"{world.url}/registry/")
    expect(page.get_by_role("heading", name="Explore")).to_be_visible()


def _search(page: Page, text: str) -> None:
    page.locator("#portus-search").fill(text)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"[?&]q={re.escape(text)}"))


def _repository_link(page: Page) -> Locator:
    return page.locator("#portus-repositories").get_by_role("link", name=REPOSITORY, exact=True)


def _tag_row(page: Page, tag: str) -> Locator:
    return page.locator("#portus-tags tbody tr").filter(
        has=page.get_by_role("link", name=tag, exact=True)
    )


def test_owner_explores_and_opens_her_repository(
    world: World, open_page: Callable[[], Page]
) -> None:
    page = open_page()
    _login(page, world, ALICE, then="/registry/")
    _explore(page, world)
    expect(_repository_link(page)).to_be_visible()

    _search(page, "webapp")
    link = _repository_link(page)
    expect(link).to_be_visible()
    expect(page.locator("#portus-repositories tbody tr")).to_have_count(1)
    link.click()

    expect(page).to_have_url(f"{world.url}/registry/repositories/{REPOSITORY}")
    expect(page.get_by_role("heading", level=2)).to_contain_text(REPOSITORY)
    expect(_tag_row(page, "v1").locator(".portus-platforms")).to_have_text("linux/amd64")
    platforms = _tag_row(page, "multi").locator(".portus-platforms")
    expect(platforms).to_contain_text("linux/amd64")
    expect(platforms).to_contain_text("linux/arm64/v8")
    pull = page.locator(".portus-copy code").first
    expect(pull).to_have_text(re.compile(rf"^docker pull {re.escape(world.registry_host)}/"))
    expect(pull).to_contain_text(f"{world.registry_host}/{REPOSITORY}")
    access = page.locator("#portus-access")
    expect(access.locator("strong").first).to_have_text("owner")
    for action in ("pull", "push", "delete"):
        expect(access).to_contain_text(re.compile(rf"{action}\s+allowed"))

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_hidden_from_others_until_admin_makes_namespace_public(
    world: World, open_page: Callable[[], Page]
) -> None:
    bob = open_page()
    _login(bob, world, BOB, then="/registry/")
    _explore(bob, world)
    expect(_repository_link(bob)).to_have_count(0)
    _search(bob, "webapp")
    expect(bob.locator("#portus-no-repositories")).to_be_visible()
    expect(bob.locator("#portus-repository-total")).to_have_text("0")
    hidden = bob.goto(f"{world.url}/registry/repositories/{REPOSITORY}")
    assert hidden is not None and hidden.status == 404

    admin = open_page()
    _login(admin, world, ADMIN, then="/namespaceview/list/")
    row = admin.locator("table tbody tr").filter(
        has=admin.get_by_role("cell", name="alice", exact=True)
    )
    expect(row).to_have_count(1)
    row.locator("a[href*='/namespaceview/edit/']").click()
    expect(admin).to_have_url(re.compile(r"/namespaceview/edit/\d+"))
    _choose_select2(admin, "visibility", "public")
    admin.get_by_role("button", name="Save").click()
    expect(admin).to_have_url(re.compile(r"/namespaceview/list/"))
    expect(admin.locator(".alert-success")).to_be_visible()
    expect(admin.locator(".alert-danger")).to_have_count(0)
    assert _show(world.stack, REPOSITORY)["visibility"] == "public"

    reloaded = bob.reload()  # the direct URL that was a 404
    assert reloaded is not None and reloaded.status == 200
    expect(bob.get_by_role("heading", level=2)).to_contain_text(REPOSITORY)
    _explore(bob, world)
    _repository_link(bob).click()
    expect(bob).to_have_url(f"{world.url}/registry/repositories/{REPOSITORY}")
    expect(_tag_row(bob, "v1")).to_be_visible()
    access = bob.locator("#portus-access")
    expect(access).to_contain_text(re.compile(r"pull\s+allowed"))
    expect(access).to_contain_text(re.compile(r"push\s+denied"))

    anonymous = open_page()
    _explore(anonymous, world)
    expect(_repository_link(anonymous)).to_be_visible()
    opened = anonymous.goto(f"{world.url}/registry/repositories/{REPOSITORY}")
    assert opened is not None and opened.status == 200
    expect(_tag_row(anonymous, "multi")).to_be_visible()


def _choose_select2(page: Page, field: str, value: str) -> None:
    """Pick an option of a Select2-enhanced <select> the way a user does: open the widget, click
    the option; fall back to the underlying <select> if the widget is not there."""
    select = page.locator(f"select#{field}")
    widget = page.locator(f"select#{field} + .select2-container .select2-selection")
    page.wait_for_load_state()  # Select2 replaces the <select> once the document is ready
    if widget.count():
        widget.click()
        page.locator(".select2-results__option", has_text=re.compile(rf"^{value}$")).click()
    else:
        select.select_option(value)
    expect(select).to_have_value(value)
