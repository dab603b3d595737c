"""The token endpoint with AUTH_LDAP, against a real slapd: directory passwords in both forms (GET
Basic, POST grant_type=password), users created at first sight with their personal namespace,
roles and teams; a returning client binds to nothing, even after a policy change; a wrong
password is refused and counted; a directory that cannot be reached is a 401 that says so,
uncounted, while the clients it said yes to keep working for PORTUS_CREDENTIAL_CACHE_TTL, the
longest a disabled account or a removed group goes unnoticed."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select
from sqlalchemy.orm import Session

from portus_fab.access.policy import Principal
from portus_fab.audit import Kind
from portus_fab.auth.authenticate import DIRECTORY_UNREACHABLE, INVALID, authenticate
from portus_fab.core import portus
from portus_fab.models import Activity, Namespace
from portus_fab.models.epoch import bump_epoch, current_epoch
from portus_fab.models.namespaces import NamespaceKind, utcnow
from portus_fab.models.transaction import transaction
from tests.support.hanging import HangingServer
from tests.support.ldap_apps import (
    failures_counted,
    get_token,
    granted,
    ldap_app,
    post_token,
    teams_of,
)
from tests.support.slapd import ALICE, BOB, CAROL, OPS_DN, Person, Slapd, start_tls_settings
from tests.support.wait import wait_until

PUSH = "repository:{}/app:pull,push"


@pytest.fixture
def app(template_dir: Path, tmp_path: Path, ldap_directory: Slapd) -> Iterator[Flask]:
    app = ldap_app(template_dir, tmp_path, ldap_directory)
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


def user_named(app: Flask, username: str) -> User | None:
    session = app.appbuilder.session
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        session.refresh(user)
    return user


def bump(app: Flask) -> None:
    """A policy change somewhere: every process's cached credentials are dropped."""
    with Session(app.extensions["sqlalchemy"].engine) as session, transaction(session):
        bump_epoch(session)


def refusal(response: object) -> str:
    body = response.get_json()  # type: ignore[attr-defined]
    assert response.status_code == 401, body  # type: ignore[attr-defined]
    return body["errors"][0]["message"]


@pytest.mark.parametrize("form", ["get", "post"])
def test_first_token_creates_the_user_with_namespace_roles_and_teams(app: Flask, form: str) -> None:
    ask = get_token if form == "get" else post_token
    response = ask(app.test_client(), ALICE.uid, ALICE.password, scope=PUSH.format("alice"))
    assert response.status_code == 200, response.get_json()
    assert granted(response) == {"alice/app": ["pull", "push"]}
    user = user_named(app, "alice")
    assert user is not None
    assert (user.first_name, user.last_name, user.email) == ("Alice", "Liddell", ALICE.mail)
    # AUTH_ROLES_MAPPING: ops gives Admin, and the registration role is kept.
    assert sorted(role.name for role in user.roles) == ["Admin", "User"]
    session = app.appbuilder.session
    personal = session.scalar(select(Namespace).where(Namespace.user_id == user.id))
    assert personal is not None and personal.name == "alice"
    assert personal.kind == NamespaceKind.PERSONAL
    # devs gives contributor, ops owner of ops and viewer of devs: the highest role wins.
    assert teams_of(app, "alice") == {
        "devs": ("contributor", "ldap"),
        "ops": ("owner", "ldap"),
    }
    # The sign-in's records name the user who signed in.
    recorded = session.execute(select(Activity.kind, Activity.actor, Activity.target_name)).all()
    assert {(kind, actor, name) for kind, actor, name in recorded if actor != "portus_fab"} == {
        (Kind.NAMESPACE_CREATED, "alice", "alice"),
        (Kind.TEAM_CREATED, "alice", "devs"),
        (Kind.MEMBER_ADDED, "alice", "devs"),
        (Kind.TEAM_CREATED, "alice", "ops"),
        (Kind.MEMBER_ADDED, "alice", "ops"),
    }


def test_a_returning_client_binds_to_nothing_even_after_a_policy_change(
    app: Flask, ldap_directory: Slapd
) -> None:
    client = app.test_client()
    before = ldap_directory.bind_count()
    assert get_token(client, BOB.uid, BOB.password).status_code == 200
    first = ldap_directory.bind_count() - before
    assert first == 2  # the reader's bind to search, bob's to prove his password
    for _ in range(3):
        assert get_token(client, BOB.uid, BOB.password).status_code == 200
        assert post_token(client, BOB.uid, BOB.password).status_code == 200
    bump(app)
    assert get_token(client, BOB.uid, BOB.password).status_code == 200
    assert ldap_directory.bind_count() - before == first


def test_a_wrong_password_is_refused_and_counted(app: Flask) -> None:
    client = app.test_client()
    for ask in (get_token, post_token):
        counted = failures_counted(app)
        assert refusal(ask(client, ALICE.uid, "not-her-password")) == INVALID
        assert failures_counted(app) == counted + 1
    assert user_named(app, "alice") is None


@pytest.mark.parametrize(
    ("username", "password"),
    [(CAROL.uid, CAROL.password), ("nobody", "anything")],
    ids=["disabled", "unknown"],
)
def test_a_disabled_or_unknown_account_is_refused(app: Flask, username: str, password: str) -> None:
    assert refusal(get_token(app.test_client(), username, password)) == INVALID
    assert user_named(app, username) is None


def test_an_account_disabled_here_is_refused_without_asking_the_directory(
    app: Flask, ldap_directory: Slapd
) -> None:
    client = app.test_client()
    assert get_token(client, BOB.uid, BOB.password).status_code == 200
    user = user_named(app, "bob")
    assert user is not None
    with transaction(app.appbuilder.session):
        user.active = False
    before = ldap_directory.bind_count()
    assert refusal(get_token(client, BOB.uid, BOB.password)) == INVALID
    assert ldap_directory.bind_count() == before


def test_directory_down_cached_clients_work_new_ones_are_told(
    app: Flask, ldap_directory: Slapd
) -> None:
    client = app.test_client()
    assert get_token(client, ALICE.uid, ALICE.password).status_code == 200
    ldap_directory.stop()
    bump(app)  # no cached token answer: only the directory's remembered yes
    assert get_token(client, ALICE.uid, ALICE.password).status_code == 200
    assert post_token(client, ALICE.uid, ALICE.password).status_code == 200
    counted = failures_counted(app)
    for ask in (get_token, post_token):
        response = ask(client, BOB.uid, BOB.password)
        assert refusal(response) == DIRECTORY_UNREACHABLE
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    # A wrong password of a known client cannot be told from a right one either.
    assert refusal(get_token(client, ALICE.uid, "not-her-password")) == DIRECTORY_UNREACHABLE
    assert failures_counted(app) == counted  # no one guessed wrong
    ldap_directory.start()
    assert get_token(client, BOB.uid, BOB.password).status_code == 200


def test_a_disabled_account_and_a_removed_group_count_within_the_cache_ttl(
    template_dir: Path, tmp_path: Path, ldap_directory: Slapd
) -> None:
    app = ldap_app(template_dir, tmp_path, ldap_directory, PORTUS_CREDENTIAL_CACHE_TTL="1")
    with app.app_context():
        client = app.test_client()
        assert get_token(client, ALICE.uid, ALICE.password).status_code == 200
        assert "ops" in teams_of(app, "alice")
        ldap_directory.add_member(OPS_DN, BOB.dn)  # a group keeps one member at least
        ldap_directory.remove_member(OPS_DN, ALICE.dn)

        def out_of_ops() -> bool:
            assert get_token(client, ALICE.uid, ALICE.password).status_code == 200
            return "ops" not in teams_of(app, "alice")

        wait_until(out_of_ops, timeout=5, message="the removed group noticed")
        assert teams_of(app, "alice") == {"devs": ("contributor", "ldap")}
        user = user_named(app, "alice")
        assert user is not None and [role.name for role in user.roles] == ["User"]
        ldap_directory.lock(ALICE.dn)
        wait_until(
            lambda: get_token(client, ALICE.uid, ALICE.password).status_code == 401,
            timeout=5,
            message="the disabled account noticed",
        )
        app.appbuilder.session.remove()


def test_no_refresh_token_for_a_directory_password(app: Flask) -> None:
    """A refresh token is never checked against the directory: the client keeps the password."""
    response = get_token(
        app.test_client(), ALICE.uid, ALICE.password, offline_token="true", client_id="docker"
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.get_json()


def test_start_tls_with_the_ca_and_without(
    template_dir: Path, tmp_path: Path, slapd: Slapd
) -> None:
    tls = start_tls_settings(slapd)
    trusted = ldap_app(template_dir, tmp_path / "trusted", slapd, **tls)
    with trusted.app_context():
        assert get_token(trusted.test_client(), BOB.uid, BOB.password).status_code == 200
        trusted.appbuilder.session.remove()
    untrusted = ldap_app(
        template_dir, tmp_path / "untrusted", slapd, **{**tls, "AUTH_LDAP_TLS_CACERTFILE": ""}
    )
    with untrusted.app_context():
        response = get_token(untrusted.test_client(), BOB.uid, BOB.password)
        assert refusal(response) == DIRECTORY_UNREACHABLE
        untrusted.appbuilder.session.remove()


def test_a_hanging_directory_is_a_401_within_the_ldap_timeout(
    template_dir: Path, tmp_path: Path, slapd: Slapd
) -> None:
    with HangingServer() as hanging:
        app = ldap_app(
            template_dir,
            tmp_path,
            slapd,
            AUTH_LDAP_SERVER=f"ldap://127.0.0.1:{hanging.port}",
            PORTUS_LDAP_TIMEOUT="0.5",
        )
        with app.app_context():
            started = time.monotonic()
            response = post_token(app.test_client(), BOB.uid, BOB.password)
            assert refusal(response) == DIRECTORY_UNREACHABLE
            assert time.monotonic() - started < 1.5  # not a worker held for ever
            app.appbuilder.session.remove()


def test_a_cached_answer_lives_no_longer_than_the_directory_s_yes(app: Flask) -> None:
    """A token answer cached at an epoch bump, long after the bind, must not stretch the
    directory's yes: the principal carries when that yes stops counting."""
    core = portus()
    header = "Basic " + base64.b64encode(f"{BOB.uid}:{BOB.password}".encode()).decode()
    ttl = dt.timedelta(seconds=core.settings.credential_cache_ttl)

    def sign_in() -> Principal:
        epoch = current_epoch(core.engine)
        return authenticate(core.authentication, core.session, header, account=None, epoch=epoch)

    before = utcnow()
    bound = sign_in()
    assert bound.expires_at is not None and before + ttl <= bound.expires_at <= utcnow() + ttl
    bump(app)
    assert sign_in().expires_at == bound.expires_at  # from the database, the same yes


def test_first_sign_ins_at_the_same_moment_all_get_their_token(app: Flask) -> None:
    """A client asking for several scopes' tokens at once, two new people of one group at once:
    each request finds what the others created (the user, the team) instead of failing."""
    people = (ALICE, BOB) * 3
    barrier = threading.Barrier(len(people))
    answers: dict[int, int] = {}

    def first_sign_in(number: int, person: Person) -> None:
        client = app.test_client()
        barrier.wait(10)
        answers[number] = get_token(client, person.uid, person.password).status_code

    threads = [
        threading.Thread(target=first_sign_in, args=(number, person))
        for number, person in enumerate(people)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == dict.fromkeys(range(len(people)), 200)
    assert teams_of(app, "bob") == {"devs": ("contributor", "ldap")}
