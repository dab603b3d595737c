"""OpenID Connect in a real Chromium, CSRF on: a person signs in through a real provider
(oidc-provider-mock on loopback) and is created with their personal namespace, the role their
group maps to and the team another maps to; their profile shows how to `docker login` without a
password; they create a personal access token in the screens and push with skopeo, through the
real registry, to their personal namespace with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portus_fab.auth.secrets import PATTERN, SecretKind, looks_like
from portus_fab.catalog import reporting
from portus_fab.core import portus
from portus_fab.models import Grant, Namespace, Role, Team, TeamMember
from tests.e2e.browser.test_browser_forms import browser, page  # noqa: F401 - fixtures
from tests.e2e.conftest import Stack, start_stack
from tests.support.oidc import (
    FAB_STATE_KEY_WARNING,
    MAPPED_ROLE,
    PROVIDER,
    OidcProvider,
    oauth_config,
)
from tests.support.wait import wait_until

pytestmark = FAB_STATE_KEY_WARNING

SUB = "kim-at-the-provider"
KIM = {
    "preferred_username": "kim",
    "email": "kim@example.test",
    "email_verified": True,
    "given_name": "Kim",
    "family_name": "Lee",
    "groups": ["devs", "auditors"],
}


@pytest.fixture(scope="module")
def stack(
    oauth_template_dir: Path,
    oidc_provider: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    oidc_provider.set_user(SUB, KIM)
    workdir = tmp_path_factory.mktemp("oidc-browser")
    yield from start_stack(
        oauth_template_dir, workdir, WTF_CSRF_ENABLED=True, **oauth_config(oidc_provider)
    )


def sign_in_through_the_provider(screen: Page, stack: Stack) -> None:
    screen.goto(f"{stack.portus_url}/login/")
    screen.locator(f"#btn-signin-{PROVIDER}").click()
    # The provider's own consent form, on its own origin.
    screen.locator("input[name=sub]").fill(SUB)
    screen.get_by_role("button", name="Authorize").click()
    expect(screen.locator("a[href*='/logout']")).to_be_attached()
    assert screen.url.startswith(stack.portus_url), screen.url


def created(stack: Stack) -> dict[str, Any]:
    """What portus_fab holds about kim."""
    with stack.app.app_context():
        session = portus().session
        try:
            kim = stack.app.appbuilder.sm.find_user(username="kim")
            namespace = session.scalar(select(Namespace).where(Namespace.user_id == kim.id))
            owner = session.scalar(
                select(Grant.role).where(
                    Grant.namespace_id == namespace.id, Grant.user_id == kim.id
                )
            )
            teams = session.execute(
                select(Team.name, TeamMember.role, TeamMember.source)
                .join(TeamMember.team)
                .where(TeamMember.user_id == kim.id)
            ).all()
            return {
                "roles": {role.name for role in kim.roles},
                "namespace": namespace.name,
                "owner": owner,
                "teams": {tuple(row) for row in teams},
            }
        finally:
            session.remove()


def registry_host(stack: Stack) -> str:
    with stack.app.app_context():
        return portus().settings.registry_host


def pushed_by(stack: Stack, repository: str, tag: str) -> str | None:
    with stack.app.app_context():
        session = portus().session
        try:
            found = reporting.describe(session, repository, tag)
            return None if found is None else found["pushed_by"]
        finally:
            session.remove()


def test_the_first_sign_in_creates_the_user_with_namespace_role_and_team(
    page: Page,  # noqa: F811 - the fixture imported above
    stack: Stack,
) -> None:
    sign_in_through_the_provider(page, stack)
    assert created(stack) == {
        "roles": {"User", MAPPED_ROLE},
        "namespace": "kim",
        "owner": Role.OWNER,
        "teams": {("developers", Role.CONTRIBUTOR, "oidc")},
    }


def test_their_profile_and_tokens_page_show_the_docker_login_command(
    page: Page,  # noqa: F811 - the fixture imported above
    stack: Stack,
) -> None:
    sign_in_through_the_provider(page, stack)
    command = f"docker login -u kim --password-stdin {registry_host(stack)}"
    # FAB's user menu, under the name the provider gave.
    page.locator("a.dropdown-toggle", has_text="Kim Lee").click()
    page.get_by_role("link", name="Profile").click()
    expect(page).to_have_url(f"{stack.portus_url}/users/userinfo/")
    help_box = page.locator("#portus-docker-login")
    expect(help_box).to_contain_text("no password for the registry")
    expect(help_box.locator(".portus-copy code")).to_have_text(command)
    expect(page.get_by_text(re.compile("reset.*password", re.I))).to_have_count(0)
    help_box.get_by_role("link", name="create one").click()
    expect(page).to_have_url(f"{stack.portus_url}/access-tokens/#portus-token-create")
    expect(page.locator("#portus-docker-login .portus-copy code")).to_have_text(command)


def test_they_create_an_access_token_and_push_to_their_namespace_with_it(
    page: Page,  # noqa: F811 - the fixture imported above
    stack: Stack,
    image_layout: str,
) -> None:
    sign_in_through_the_provider(page, stack)
    page.goto(f"{stack.portus_url}/access-tokens/")
    page.locator("#portus-token-create input#name").fill("laptop")
    page.locator("#portus-token-create select#access").select_option("write")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#portus-access-token-secret")
    expect(shown).to_contain_text("Access token laptop")
    (secret,) = set(PATTERN.findall(shown.inner_text()))
    assert looks_like(secret, SecretKind.ACCESS_TOKEN)

    skopeo = stack.skopeo("kim")
    login = skopeo.login("kim", secret)
    assert login.returncode == 0, login.stderr
    pushed = skopeo.copy(image_layout, "kim/hello:v1")
    assert pushed.returncode == 0, pushed.stderr
    by = wait_until(lambda: pushed_by(stack, "kim/hello", "v1"), message="push never recorded")
    assert by == "kim"
