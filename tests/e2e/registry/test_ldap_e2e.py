"""LDAP sign-in end to end: a real slapd (tests/support/slapd.py), portus_fab served over HTTP
with AUTH_TYPE = AUTH_LDAP, the real docker-registry and skopeo. People log in with their
directory password; a directory group is a team; a group removed in the directory stops
counting within PORTUS_CREDENTIAL_CACHE_TTL; a directory that goes away leaves returning clients
working and tells new ones so; StartTLS trusts the CA the test made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from portus_fab.models.namespaces import Namespace, Team, TeamMember
from tests.conftest import make_app
from tests.e2e.conftest import Stack, start_stack
from tests.support.slapd import (
    ALICE,
    BOB,
    CAROL,
    DEVS_DN,
    Person,
    Slapd,
    ldap_settings,
    start_tls_settings,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

TEAM_NAMESPACE = "devs-apps"
GROUP_TEAMS = {DEVS_DN: ["devs", "contributor"]}
UNREACHABLE = "unreachable"  # in the 401's message when the directory gives no answer
SHORT_TTL = 2  # seconds: how long a removed group may go unnoticed in the short-TTL stack


def _ldap_stack(
    template_dir: Path, workdir: Path, slapd: Slapd, **overrides: Any
) -> Iterator[Stack]:
    """A served LDAP app and its registry, with the team namespace `devs-apps` granted to the
    team `devs` (the team PORTUS_GROUP_TEAMS fills from cn=devs) as contributor."""
    settings = ldap_settings(slapd, PORTUS_GROUP_TEAMS=GROUP_TEAMS, **overrides)
    for stack in start_stack(template_dir, workdir, **settings):
        _cli(stack, "team", "create", "devs")
        _cli(stack, "namespace", "create", TEAM_NAMESPACE)
        _cli(stack, "grant", TEAM_NAMESPACE, "--team", "devs", "--role", "contributor")
        yield stack


@pytest.fixture(scope="module")
def stack(
    template_dir: Path, tmp_path_factory: pytest.TempPathFactory, slapd: Slapd
) -> Iterator[Stack]:
    # Long enough that nothing this module caches expires while a test runs.
    yield from _ldap_stack(
        template_dir, tmp_path_factory.mktemp("ldap"), slapd, PORTUS_CREDENTIAL_CACHE_TTL="600"
    )


def _cli(stack: Stack, *args: str) -> str:
    with stack.app.app_context():
        result = stack.cli("portus", *args)
        stack.app.appbuilder.session.remove()
    assert result.exit_code == 0, result.output
    return result.output


def _token_request(stack: Stack, creds: tuple[str, str], scope: str) -> requests.Response:
    return requests.get(
        f"{stack.portus_url}/v2/token",
        params={"service": stack.registry.host, "scope": scope, "account": creds[0]},
        auth=creds,
        timeout=30,
    )


def _granted(stack: Stack, creds: tuple[str, str], repository: str) -> list[str]:
    """The actions the token endpoint grants on `repository` when pull and push are asked."""
    answer = _token_request(stack, creds, f"repository:{repository}:pull,push")
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    return sorted(action for entry in claims["access"] for action in entry["actions"])


def _memberships(stack: Stack, username: str) -> dict[str, tuple[str, str | None]]:
    """team name -> (role, source) of the user's memberships."""
    with stack.app.app_context():
        session = stack.app.appbuilder.session
        rows = session.execute(
            select(Team.name, TeamMember.role, TeamMember.source)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .join(User, User.id == TeamMember.user_id)
            .where(User.username == username)
        ).all()
        session.remove()
    return {name: (str(getattr(role, "value", role)), source) for name, role, source in rows}


def test_skopeo_logs_in_and_pushes_with_the_directory_password(
    stack: Stack, slapd: Slapd, image_layout: str
) -> None:
    client = stack.skopeo("alice")
    login = client.login("alice", ALICE.password)
    assert login.returncode == 0, login.stderr
    pushed = client.copy(image_layout, "alice/app:v1")
    assert pushed.returncode == 0, pushed.stderr

    with stack.app.app_context():
        session = stack.app.appbuilder.session
        user = session.scalars(select(User).where(User.username == "alice")).one()
        assert (user.first_name, user.last_name, user.email) == ("Alice", "Liddell", ALICE.mail)
        assert session.scalars(select(Namespace).where(Namespace.name == "alice")).one()
        session.remove()

    # A returning client: pulls and tag lists with the stored login never bind again.
    binds = slapd.bind_count()
    for _ in range(3):
        assert client.inspect("alice/app:v1").returncode == 0
        assert client.list_tags("alice/app").returncode == 0
    assert slapd.bind_count() == binds


def test_a_wrong_password_and_a_disabled_account_are_refused(
    stack: Stack, image_layout: str
) -> None:
    client = stack.skopeo("refused")
    assert client.login("bob", "not-bobs-password").returncode != 0
    assert client.copy(image_layout, "bob/app:v1", creds=("bob", "wrong")).returncode != 0
    # carol's right password: her directory account is locked (ppolicy).
    assert client.login("carol", CAROL.password).returncode != 0
    answer = _token_request(stack, ("carol", CAROL.password), "repository:carol/app:pull")
    assert answer.status_code == 401, answer.text
    assert UNREACHABLE not in answer.text
    with stack.app.app_context():
        session = stack.app.appbuilder.session
        assert session.scalars(select(User).where(User.username == "carol")).first() is None
        session.remove()


def test_a_directory_group_is_a_team_membership(
    stack: Stack, ldap_directory: Slapd, image_layout: str
) -> None:
    client = stack.skopeo("bob")
    assert client.login("bob", BOB.password).returncode == 0
    assert _memberships(stack, "bob") == {"devs": ("contributor", "ldap")}
    pushed = client.copy(image_layout, f"{TEAM_NAMESPACE}/app:v1")
    assert pushed.returncode == 0, pushed.stderr

    # Someone in no mapped group gets nothing in the team's namespace.
    outsider = Person("olga", "olga-directory-pw", "Olga", "Out")
    ldap_directory.add_person(outsider)
    creds = (outsider.uid, outsider.password)
    assert _granted(stack, creds, f"{TEAM_NAMESPACE}/app") == []
    assert _memberships(stack, outsider.uid) == {}
    refused = stack.skopeo("olga").copy(image_layout, f"{TEAM_NAMESPACE}/app:v2", creds=creds)
    assert refused.returncode != 0


def test_a_group_removed_in_the_directory_stops_counting_within_the_cache_ttl(
    template_dir: Path, tmp_path: Path, ldap_directory: Slapd, image_layout: str
) -> None:
    person = Person("gina", "gina-directory-pw", "Gina", "Leaver")
    ldap_directory.add_person(person, groups=(DEVS_DN,))
    creds = (person.uid, person.password)
    for stack in _ldap_stack(
        template_dir, tmp_path, ldap_directory, PORTUS_CREDENTIAL_CACHE_TTL=str(SHORT_TTL)
    ):
        client = stack.skopeo("gina")
        assert client.copy(image_layout, f"{TEAM_NAMESPACE}/gina:v1", creds=creds).returncode == 0
        assert _memberships(stack, "gina") == {"devs": ("contributor", "ldap")}

        ldap_directory.remove_member(DEVS_DN, person.dn)
        removed = time.monotonic()
        wait_until(
            lambda stack=stack: _granted(stack, creds, f"{TEAM_NAMESPACE}/gina") == [],
            timeout=SHORT_TTL + 10,
            interval=0.2,
            message="the removed group still gives push",
        )
        # Noticed at the first sign-in after the cached yes expired, not before it could have.
        assert time.monotonic() - removed <= SHORT_TTL + 10
        assert _memberships(stack, "gina") == {}
        refused = client.copy(image_layout, f"{TEAM_NAMESPACE}/gina:v2", creds=creds)
        assert refused.returncode != 0
        # Her own namespace is hers still: only the team went.
        assert client.copy(image_layout, "gina/app:v1", creds=creds).returncode == 0


def test_the_directory_stopped_cached_clients_keep_working_new_ones_are_told(
    stack: Stack, ldap_directory: Slapd, image_layout: str
) -> None:
    returning = Person("hank", "hank-directory-pw", "Hank", "Stays")
    newcomer = Person("ivy", "ivy-directory-pw", "Ivy", "Late")
    ldap_directory.add_person(returning, groups=(DEVS_DN,))
    ldap_directory.add_person(newcomer)
    client = stack.skopeo("hank")
    assert client.login(returning.uid, returning.password).returncode == 0
    assert client.copy(image_layout, "hank/app:v1").returncode == 0

    ldap_directory.stop()
    assert client.inspect("hank/app:v1").returncode == 0
    pushed = client.copy(image_layout, f"{TEAM_NAMESPACE}/hank:v1")  # the team too
    assert pushed.returncode == 0, pushed.stderr

    creds = (newcomer.uid, newcomer.password)
    answer = _token_request(stack, creds, "repository:ivy/app:pull,push")
    assert answer.status_code == 401, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert UNREACHABLE in answer.json()["details"], answer.text
    pull = stack.skopeo("ivy").copy(image_layout, "ivy/app:v1", creds=creds)
    assert pull.returncode != 0
    assert UNREACHABLE in pull.stderr, pull.stderr

    ldap_directory.start()
    assert stack.skopeo("ivy").login(*creds).returncode == 0


def test_start_tls_with_the_ca_the_test_made(
    template_dir: Path, tmp_path: Path, ldap_directory: Slapd, image_layout: str
) -> None:
    person = Person("tess", "tess-directory-pw", "Tess", "Tls")
    ldap_directory.add_person(person)
    creds = (person.uid, person.password)
    for stack in start_stack(
        template_dir,
        tmp_path / "tls",
        **ldap_settings(ldap_directory, **start_tls_settings(ldap_directory)),
    ):
        client = stack.skopeo("tess")
        assert client.login(*creds).returncode == 0
        pushed = client.copy(image_layout, "tess/app:v1")
        assert pushed.returncode == 0, pushed.stderr

    # The same settings trusting only the machine's CAs: StartTLS fails, and says so.
    app = make_app(
        template_dir,
        tmp_path / "untrusted",
        **ldap_settings(
            ldap_directory,
            **{
                **start_tls_settings(ldap_directory),
                "AUTH_LDAP_TLS_CACERTFILE": "/etc/ssl/certs/ca-certificates.crt",
            },
        ),
    )
    answer = app.test_client().get(
        "/v2/token",
        query_string={"scope": "repository:tess/app:pull"},
        auth=creds,
    )
    assert answer.status_code == 401, answer.text
    assert UNREACHABLE in answer.get_json()["details"]


def test_the_web_login_form_signs_in_with_the_directory_password(stack: Stack) -> None:
    with requests.Session() as browser:
        refused = browser.post(
            f"{stack.portus_url}/login/", data={"username": "bob", "password": "wrong"}, timeout=30
        )
        assert "/login/" in refused.url
        signed_in = browser.post(
            f"{stack.portus_url}/login/",
            data={"username": "bob", "password": BOB.password},
            timeout=30,
        )
        assert signed_in.status_code == 200
        assert "/login/" not in signed_in.url, signed_in.url
        # Signed in as bob: his own namespace is among those his screens list.
        listing = browser.get(f"{stack.portus_url}/registry/", timeout=30)
        assert listing.status_code == 200
        assert "/login/" not in listing.url
        assert "Personal namespace of bob" in listing.text, listing.text
