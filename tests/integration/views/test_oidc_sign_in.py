"""Signing in through a real OpenID Connect provider (oidc-provider-mock on loopback, through
FAB's AUTH_OAUTH and Authlib): the generic user-info getter turns its claims into the user,
whose roles follow AUTH_ROLES_MAPPING and teams PORTUS_GROUP_TEAMS; such users, who have no
registry password, are shown how to `docker login` with an access token."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from portus_fab.audit import Kind
from portus_fab.auth.authenticate import INVALID, INVALID_WITHOUT_PASSWORDS
from portus_fab.core import portus
from portus_fab.models import Activity, Grant, Namespace, NamespaceKind, Role, Team, TeamMember
from portus_fab.settings import load_config_file
from portus_fab.views import oidc as views_oidc
from portus_fab.views.oidc import DockerLogin
from tests.conftest import add_user
from tests.support.oidc import (
    FAB_STATE_KEY_WARNING,
    MAPPED_ROLE,
    OidcProvider,
    oauth_app,
    sign_in,
)
from tests.support.screens import body_of, text_of

pytestmark = FAB_STATE_KEY_WARNING

_subjects = itertools.count(1)


@pytest.fixture
def make_oauth_app(
    oauth_template_dir: Path, oidc_provider: OidcProvider, tmp_path: Path
) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = oauth_app(
            oauth_template_dir, tmp_path / f"data{len(apps)}", oidc_provider, **overrides
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            app.appbuilder.session.remove()


@pytest.fixture
def oauth(make_oauth_app: Any) -> Iterator[Flask]:
    app = make_oauth_app()
    with app.app_context():
        yield app


def person(provider: OidcProvider, **claims: Any) -> str:
    """A new subject at the provider with these claims; its `sub`."""
    sub = f"subject-{next(_subjects)}"
    provider.set_user(sub, claims)
    return sub


def signed_in(app: Flask, provider: OidcProvider, sub: str) -> FlaskClient:
    client = app.test_client()
    answer = sign_in(client, provider, sub)
    assert answer.status_code == 302 and "/login" not in answer.headers["Location"], (
        answer.headers.get("Location")
    )
    return client


def refused(app: Flask, provider: OidcProvider, sub: str) -> bool:
    answer = sign_in(app.test_client(), provider, sub)
    return answer.status_code == 302 and "/login" in answer.headers["Location"]


def user_named(app: Flask, username: str) -> Any:
    app.appbuilder.session.expire_all()
    return app.appbuilder.sm.find_user(username=username)


def teams_of(app: Flask, user: Any) -> dict[str, tuple[Role, str | None]]:
    session = app.appbuilder.session
    session.expire_all()
    rows = session.execute(
        select(Team.name, TeamMember.role, TeamMember.source)
        .join(TeamMember.team)
        .where(TeamMember.user_id == user.id)
    )
    return {name: (role, source) for name, role, source in rows}


def test_first_sign_in_creates_the_user_with_namespace_mapped_roles_and_teams(
    oauth: Flask, oidc_provider: OidcProvider
) -> None:
    sub = person(
        oidc_provider,
        preferred_username="dana",
        email="dana@example.test",
        email_verified=True,
        given_name="Dana",
        family_name="Scully",
        groups=["devs", "leads", "auditors", "unmapped"],
    )
    signed_in(oauth, oidc_provider, sub)

    dana = user_named(oauth, "dana")
    assert (dana.email, dana.first_name, dana.last_name) == ("dana@example.test", "Dana", "Scully")
    assert {role.name for role in dana.roles} == {"User", MAPPED_ROLE}
    session = oauth.appbuilder.session
    namespace = session.scalar(select(Namespace).where(Namespace.user_id == dana.id))
    assert namespace is not None
    assert (namespace.name, namespace.kind) == ("dana", NamespaceKind.PERSONAL)
    grant = session.scalar(select(Grant).where(Grant.namespace_id == namespace.id))
    assert grant is not None and (grant.user_id, grant.role) == (dana.id, Role.OWNER)
    # devs gives contributor, leads owner of the same team: the higher wins.
    assert teams_of(oauth, dana) == {"developers": (Role.OWNER, "oidc")}
    # The sign-in's records name the user who signed in, not an anonymous visitor.
    recorded = session.execute(select(Activity.kind, Activity.actor, Activity.target_name)).all()
    assert {(kind, actor, name) for kind, actor, name in recorded if actor != "portus_fab"} == {
        (Kind.NAMESPACE_CREATED, "dana", "dana"),
        (Kind.TEAM_CREATED, "dana", "developers"),
        (Kind.MEMBER_ADDED, "dana", "developers"),
    }


def test_each_sign_in_follows_the_groups_the_provider_sends_now(
    oauth: Flask, oidc_provider: OidcProvider
) -> None:
    claims = {"preferred_username": "erin", "groups": ["devs", "auditors"]}
    sub = person(oidc_provider, **claims)
    signed_in(oauth, oidc_provider, sub)
    erin = user_named(oauth, "erin")
    assert teams_of(oauth, erin) == {"developers": (Role.CONTRIBUTOR, "oidc")}
    assert {role.name for role in erin.roles} == {"User", MAPPED_ROLE}

    oidc_provider.set_user(sub, {**claims, "groups": []})
    signed_in(oauth, oidc_provider, sub)
    erin = user_named(oauth, "erin")
    assert teams_of(oauth, erin) == {}
    assert {role.name for role in erin.roles} == {"User"}
    assert oauth.appbuilder.sm.find_user(username="erin").login_count == 2


def test_the_groups_claim_is_configurable(make_oauth_app: Any, oidc_provider: OidcProvider) -> None:
    app = make_oauth_app(PORTUS_OIDC_GROUPS_CLAIM="memberships")
    sub = person(
        oidc_provider,
        preferred_username="fay",
        memberships=["auditors", "devs"],
        groups=["leads"],  # not the configured claim: no team, no role from it
    )
    with app.app_context():
        assert portus().settings.oidc_groups_claim == "memberships"
        signed_in(app, oidc_provider, sub)
        fay = user_named(app, "fay")
        assert {role.name for role in fay.roles} == {"User", MAPPED_ROLE}
        assert teams_of(app, fay) == {"developers": (Role.CONTRIBUTOR, "oidc")}


@pytest.mark.parametrize(
    ("claims", "username"),
    [
        ({"email": "gil@example.test"}, "gil@example.test"),
        # Unverified: neither the username nor the email.
        ({"email": "boss@example.test", "email_verified": False}, None),
        ({"preferred_username": "gil:admin", "email": "gil2@example.test"}, "gil2@example.test"),
        ({"preferred_username": "gil+ci"}, None),
    ],
)
def test_missing_or_unsafe_claims_fall_back_to_email_then_sub(
    oauth: Flask, oidc_provider: OidcProvider, claims: dict[str, Any], username: str | None
) -> None:
    """None: the sub, which has no email; FAB then makes one up from the username."""
    sub = person(oidc_provider, **claims)
    signed_in(oauth, oidc_provider, sub)
    user = user_named(oauth, username or sub)
    assert user is not None
    assert user.email == (username or f"{sub}@email.notfound")
    assert oauth.appbuilder.session.scalar(select(Namespace.id).where(Namespace.user_id == user.id))


def test_the_provider_sends_a_name_portus_fab_keeps_for_itself_and_a_bad_sub(
    oauth: Flask, oidc_provider: OidcProvider
) -> None:
    # The provider's consent form accepts any text as a sub: one no username may be.
    oidc_provider.set_user("bad sub", {"preferred_username": "portus-fab-internal"})
    assert refused(oauth, oidc_provider, "bad sub")
    assert user_named(oauth, "portus-fab-internal") is None


def test_a_disabled_user_is_refused_and_keeps_their_teams(
    oauth: Flask, oidc_provider: OidcProvider
) -> None:
    claims = {"preferred_username": "hal", "groups": ["devs"]}
    sub = person(oidc_provider, **claims)
    signed_in(oauth, oidc_provider, sub)
    hal = user_named(oauth, "hal")
    hal.active = False
    oauth.appbuilder.session.commit()
    oidc_provider.set_user(sub, {**claims, "groups": []})
    assert refused(oauth, oidc_provider, sub)
    # FAB refused before the sync: nothing about a refused sign-in changes.
    assert teams_of(oauth, user_named(oauth, "hal")) == {"developers": (Role.CONTRIBUTOR, "oidc")}


def test_users_signed_in_by_the_provider_are_shown_how_to_docker_login(
    oauth: Flask, oidc_provider: OidcProvider
) -> None:
    sub = person(oidc_provider, preferred_username="ivy", email="ivy@example.test")
    ivy = signed_in(oauth, oidc_provider, sub)
    host = portus().settings.registry_host
    command = f"docker login -u ivy --password-stdin {host}"

    profile = ivy.get("/users/userinfo/")
    assert profile.status_code == 200
    for page in (profile, ivy.get("/access-tokens/")):
        text = text_of(page)
        assert "no password for the registry" in text
        assert command in text
        assert f'data-copy="{command}"' in body_of(page)
        assert 'href="/access-tokens/#portus-token-create"' in body_of(page)
    # No password to reset: FAB offers neither the action nor its form under AUTH_OAUTH.
    assert "resetmypassword" not in body_of(profile).lower()
    assert ivy.get("/resetmypassword/form").status_code == 404


def test_a_password_at_the_token_endpoint_is_told_to_use_an_access_token(
    oauth: Flask, oidc_provider: OidcProvider, app: Flask
) -> None:
    """Under AUTH_OAUTH nobody has a registry password: every refused password says what to
    send instead, for an existing user and an unknown name alike (so it reveals no one)."""
    signed_in(oauth, oidc_provider, person(oidc_provider, preferred_username="ivy"))
    service = portus().settings.registry_service
    for name in ("ivy", "nobody"):
        basic = base64.b64encode(f"{name}:the-provider-password".encode()).decode()
        answer = oauth.test_client().get(
            f"/v2/token?service={service}", headers={"Authorization": f"Basic {basic}"}
        )
        assert answer.status_code == 401
        assert answer.get_json()["details"] == INVALID_WITHOUT_PASSWORDS
    # With a password sign-in, the answer stays the plain one.
    with app.app_context():
        basic = base64.b64encode(b"nobody:wrong").decode()
        answer = app.test_client().get("/v2/token", headers={"Authorization": f"Basic {basic}"})
        assert answer.get_json()["details"] == INVALID


def test_users_with_a_password_are_not_shown_the_token_login_help(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app, "jo")
    response = client.post("/login/", data={"username": "jo", "password": "secret"})
    assert response.status_code == 302
    for path in ("/users/userinfo/", "/access-tokens/"):
        page = client.get(path)
        assert page.status_code == 200
        assert "portus-docker-login" not in body_of(page)
    assert "resetmypassword" in body_of(client.get("/users/userinfo/")).lower()


def test_the_help_escapes_what_it_shows(app: Flask) -> None:
    hostile = '<script>alert("x")</script>'
    with app.test_request_context():
        page = render_template(
            "portus_fab/_docker_login.html",
            docker_login=DockerLogin(
                command=hostile, host=hostile, username=hostile, tokens_url=hostile
            ),
        )
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_teams_that_cannot_be_synced_refuse_the_sign_in(
    oauth: Flask, oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed in with the teams of last time, a user could keep one they have left."""
    sub = person(oidc_provider, preferred_username="lou", groups=["devs"])

    def database_gone(*_args: Any) -> None:
        raise OperationalError("UPDATE team_member", {}, Exception("database is locked"))

    monkeypatch.setattr(views_oidc, "sync_group_teams", database_gone)
    client = oauth.test_client()
    answer = sign_in(client, oidc_provider, sub)
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    assert client.get("/access-tokens/").status_code == 302  # not signed in: to the sign-in page


README = Path(__file__).resolve().parents[3] / "README.md"


def readme_example(heading: str) -> str:
    """The first Python block under `heading` in the README: the example must really work."""
    text = README.read_text()
    section = text[text.index(heading) :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_config_file_signs_people_in(
    make_oauth_app: Any, oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    path = tmp_path / "portus_config.py"
    example = readme_example("### OpenID Connect")
    path.write_text(example.replace("https://id.example.com", oidc_provider.url))
    app = make_oauth_app(**load_config_file(str(path)))
    sub = person(oidc_provider, preferred_username="max", groups=["devs", "registry-admins"])
    with app.app_context():
        signed_in(app, oidc_provider, sub)
        max_ = user_named(app, "max")
        assert {role.name for role in max_.roles} == {"User", "Admin"}
        assert teams_of(app, max_) == {"developers": (Role.CONTRIBUTOR, "oidc")}
