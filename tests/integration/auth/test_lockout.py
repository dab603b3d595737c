"""Sign-in lockout (portus_fab.auth.lockout): failed sign-ins counted per (account, address) and
per address, on the web form, FAB's JSON sign-in and the token endpoint alike, in the database
(every process, every app on it); a lock refuses even the right password, from its address only,
says for how long, ends by itself or is lifted by an admin (screen or CLI), and every lock, unlock
and refusal is in the audit record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import check_password_hash

from portus_fab.audit import Kind
from portus_fab.auth import credentials
from portus_fab.models import Activity, SignInFailure, SignInLock
from portus_fab.settings import Settings
from run import create_app
from tests.conftest import IsolatedClient, add_user, app_config, make_app
from tests.support.lockout import (
    ADDRESS_THRESHOLD,
    ATTACKER,
    DURATION,
    HOME,
    LOCKOUT_SETTINGS,
    PAIR_THRESHOLD,
    Clock,
    lockout_of,
    token,
)
from tests.support.routes import csrf_token, sign_in, signed_in


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data", **LOCKOUT_SETTINGS)
    with app.app_context():
        add_user(app, "alice", "right")
        add_user(app, "boss", "right", admin=True)
        yield app
        app.appbuilder.session.remove()


@pytest.fixture
def clock(app: Flask) -> Clock:
    clock = Clock()
    lockout_of(app).clock = clock
    return clock


def web_sign_in(app: Flask, username: str, password: str, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.post("/login/", data={"username": username, "password": password})
    return client


def json_sign_in(client: FlaskClient, username: str, password: str, address: str) -> Any:
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
        environ_base={"REMOTE_ADDR": address},
    )


def kinds(app: Flask) -> list[str]:
    session = app.appbuilder.session
    session.expire_all()
    return list(session.scalars(select(Activity.kind).order_by(Activity.id)))


def test_the_right_password_is_refused_after_the_threshold_from_that_address_only(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    for _ in range(PAIR_THRESHOLD - 1):
        assert token(client, "alice", "wrong", ATTACKER).status_code == 401
    assert token(client, "alice", "right", ATTACKER).status_code == 200  # not yet
    assert token(client, "alice", "wrong", ATTACKER).status_code == 401  # the threshold
    refused = token(client, "alice", "right", ATTACKER)
    assert refused.status_code == 401
    message = refused.get_json()["errors"][0]["message"]
    assert "locked" in message and "'alice'" in message and ATTACKER in message
    assert "600 seconds" not in message and "10 minutes more" in message
    assert refused.get_json()["errors"][0]["code"] == "UNAUTHORIZED"
    # The user's own address is not locked: an attacker elsewhere cannot lock them out.
    assert token(client, "alice", "right", HOME).status_code == 200
    # That success is cached for home only: it does not answer the locked address.
    assert token(client, "alice", "right", ATTACKER).status_code == 401
    assert {Kind.SIGN_IN_LOCKED, Kind.SIGN_IN_REFUSED_LOCKED} <= set(kinds(app))


def test_a_lock_ends_by_itself(app: Flask, client: FlaskClient, clock: Clock) -> None:
    for _ in range(PAIR_THRESHOLD):
        token(client, "alice", "wrong", ATTACKER)
    clock.now += dt.timedelta(seconds=DURATION - 1)
    refused = token(client, "alice", "right", ATTACKER)
    assert "1 seconds more" in refused.get_json()["details"]
    clock.now += dt.timedelta(seconds=1)
    assert token(client, "alice", "right", ATTACKER).status_code == 200
    # The failures were spent by the lock: one more mistake does not lock again.
    assert token(client, "alice", "wrong", ATTACKER).status_code == 401
    assert token(client, "alice", "right", ATTACKER).status_code == 200


def test_a_cached_credential_is_refused_once_locked(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    """A returning client's success is cached; the lock bumps the policy epoch, so the cache
    drops it and the lock is seen at the next request."""
    assert token(client, "alice", "right", ATTACKER).status_code == 200
    for _ in range(PAIR_THRESHOLD):
        token(client, "alice", "wrong", ATTACKER)
    assert token(client, "alice", "right", ATTACKER).status_code == 401


def test_the_web_form_json_sign_in_and_token_endpoint_share_the_count(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    web_sign_in(app, "alice", "wrong", ATTACKER)
    assert json_sign_in(client, "alice", "wrong", ATTACKER).status_code == 401
    token(client, "alice", "wrong", ATTACKER)
    assert token(client, "alice", "right", ATTACKER).status_code == 401
    # The web form: not signed in, and the flash says why and for how long.
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = ATTACKER
    page = browser.post(
        "/login/", data={"username": "alice", "password": "right"}, follow_redirects=True
    )
    assert "locked for 10 minutes more" in page.get_data(as_text=True)
    assert not signed_in(browser)
    api = json_sign_in(client, "Alice", "right", ATTACKER)  # names counted case-insensitively
    assert api.status_code == 401 and "locked" in api.get_json()["message"]
    assert int(api.headers["Retry-After"]) == DURATION
    # From home, both sign-ins still work.
    assert signed_in(web_sign_in(app, "alice", "right", HOME))
    assert json_sign_in(client, "alice", "right", HOME).status_code == 200


def test_the_web_form_counts_towards_the_token_endpoint(app: Flask, clock: Clock) -> None:
    for _ in range(PAIR_THRESHOLD):
        web_sign_in(app, "alice", "wrong", ATTACKER)
    assert token(app.test_client(), "alice", "right", ATTACKER).status_code == 401


def test_an_address_is_locked_across_many_usernames(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    for number in range(ADDRESS_THRESHOLD):
        token(client, f"guess{number}", "wrong", ATTACKER)
    refused = token(client, "alice", "right", ATTACKER)
    assert refused.status_code == 401
    assert "for every account from 203.0.113.66" in refused.get_json()["details"]
    assert not signed_in(web_sign_in(app, "alice", "right", ATTACKER))
    assert token(client, "alice", "right", HOME).status_code == 200


def test_two_apps_on_one_database_share_the_lock(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """Two processes' worth of state (caches, clocks, sessions), one database."""
    other = create_app(app_config(tmp_path / "data", FAB_UPDATE_PERMS=False, **LOCKOUT_SETTINGS))
    other.test_client_class = IsolatedClient
    other_client = other.test_client()
    assert token(other_client, "alice", "right", ATTACKER).status_code == 200  # now cached
    for _ in range(PAIR_THRESHOLD):
        token(client, "alice", "wrong", ATTACKER)
    with other.app_context():
        assert token(other_client, "alice", "right", ATTACKER).status_code == 401
        assert token(other_client, "alice", "right", HOME).status_code == 200
        other.appbuilder.session.remove()


def test_an_unknown_user_and_a_wrong_password_look_the_same(
    app: Flask, client: FlaskClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same status and body; the same work (one password hash, FAB's fake one for nobody);
    and an unknown name is counted and locked like a real one."""
    hashed: list[str] = []

    def spy(stored: str, password: str) -> bool:
        hashed.append(stored)
        return check_password_hash(stored, password)

    monkeypatch.setattr(credentials, "check_password_hash", spy)
    wrong = token(client, "alice", "wrong", ATTACKER)
    unknown = token(client, "nobody", "wrong", ATTACKER)
    assert (wrong.status_code, wrong.get_json()) == (unknown.status_code, unknown.get_json())
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    fake = app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"]
    assert len(hashed) == 2 and hashed[0] != fake and hashed[1] == fake
    for _ in range(PAIR_THRESHOLD - 1):
        token(client, "alice", "wrong", ATTACKER)
        token(client, "nobody", "wrong", ATTACKER)
    alice = token(client, "alice", "right", ATTACKER).get_json()["details"]
    nobody = token(client, "nobody", "right", ATTACKER).get_json()["details"]
    assert alice.replace("'alice'", "NAME") == nobody.replace("'nobody'", "NAME")


def test_the_web_form_answers_an_unknown_user_as_a_wrong_password(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_appbuilder.security import manager

    hashed: list[str] = []

    def spy(stored: str, password: str) -> bool:
        hashed.append(stored)
        return check_password_hash(stored, password)

    monkeypatch.setattr(manager, "check_password_hash", spy)
    answers = []
    for username in ("alice", "nobody"):
        browser = app.test_client()
        browser.environ_base["REMOTE_ADDR"] = ATTACKER
        first = browser.post("/login/", data={"username": username, "password": "wrong"})
        page = browser.get(first.headers["Location"]).get_data(as_text=True)
        answers.append((first.status_code, first.headers["Location"], page.replace("\n", "")))
    assert answers[0] == answers[1]
    assert len(hashed) == 2 and hashed[1] == app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"]
    # Both failures were counted, each for the name as given.
    session = app.appbuilder.session
    counted = session.execute(select(SignInFailure.username, SignInFailure.address)).all()
    assert sorted(counted) == [("alice", ATTACKER), ("nobody", ATTACKER)]


def lock_alice(app: Flask, client: FlaskClient) -> None:
    for _ in range(PAIR_THRESHOLD):
        token(client, "alice", "wrong", ATTACKER)
    assert token(client, "alice", "right", ATTACKER).status_code == 401


def test_an_admin_sees_and_lifts_a_lock_on_the_screen(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    lock_alice(app, client)
    admin = web_sign_in(app, "boss", "right", HOME)
    page = admin.get("/sign-in-locks/").get_data(as_text=True)
    assert "alice" in page and ATTACKER in page and "10 minutes more" in page
    (lock,) = lockout_of(app).active(app.appbuilder.session)
    lifted = admin.post("/sign-in-locks/lift", data={"lock": str(lock.id)}, follow_redirects=True)
    assert "Lifted the lock on alice from 203.0.113.66" in lifted.get_data(as_text=True)
    assert "No sign-in is locked" in admin.get("/sign-in-locks/").get_data(as_text=True)
    assert token(client, "alice", "right", ATTACKER).status_code == 200
    session = app.appbuilder.session
    session.expire_all()
    unlocked = session.scalars(
        select(Activity).where(Activity.kind == Kind.SIGN_IN_UNLOCKED.value)
    ).one()
    assert (unlocked.actor, unlocked.target_name) == ("boss", "alice")


def test_the_screen_lifts_with_its_csrf_token(template_dir: Path, tmp_path: Path) -> None:
    """With CSRF on, as deployed: the screen's own form carries the token the lift needs."""
    app = make_app(template_dir, tmp_path / "data", WTF_CSRF_ENABLED=True, **LOCKOUT_SETTINGS)
    with app.app_context():
        add_user(app, "alice", "right")
        add_user(app, "boss", "right", admin=True)
        lock_alice(app, app.test_client())
        admin = sign_in(app, "boss", "right")
        (lock,) = lockout_of(app).active(app.appbuilder.session)
        forged = admin.post("/sign-in-locks/lift", data={"lock": str(lock.id)})
        assert forged.status_code == 400
        page = admin.get("/sign-in-locks/").get_data(as_text=True)
        lifted = admin.post(
            "/sign-in-locks/lift", data={"lock": str(lock.id), "csrf_token": csrf_token(page)}
        )
        assert lifted.status_code == 302
        assert lockout_of(app).active(app.appbuilder.session) == []
        app.appbuilder.session.remove()


def test_only_admins_see_the_locks(app: Flask, client: FlaskClient, clock: Clock) -> None:
    lock_alice(app, client)
    add_user(app, "olivia", "right")
    user = web_sign_in(app, "olivia", "right", HOME)
    assert signed_in(user)
    for method, url in (("GET", "/sign-in-locks/"), ("POST", "/sign-in-locks/lift")):
        answer = user.open(url, method=method, data={"lock": "1"})
        assert answer.status_code in {302, 403}, (method, url)
        assert "alice" not in answer.get_data(as_text=True)
    assert len(lockout_of(app).active(app.appbuilder.session)) == 1


def test_the_cli_lists_and_clears_locks(app: Flask, client: FlaskClient, clock: Clock) -> None:
    lock_alice(app, client)
    for number in range(ADDRESS_THRESHOLD):
        token(client, f"guess{number}", "wrong", HOME)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["portus", "lockout", "list"])
    assert listed.exit_code == 0, listed.output
    lines = sorted(listed.output.splitlines())
    assert lines == [
        f"*\t{HOME}\t{ADDRESS_THRESHOLD}\t2026-12-01T12:10:00Z",
        f"alice\t{ATTACKER}\t{PAIR_THRESHOLD}\t2026-12-01T12:10:00Z",
    ]
    only = runner.invoke(args=["portus", "lockout", "list", "--address", HOME])
    assert only.output.splitlines() == [lines[0]]
    cleared = runner.invoke(args=["portus", "lockout", "clear", "--user", "ALICE"])
    assert cleared.exit_code == 0 and cleared.output.strip() == "lifted 1 lock", cleared.output
    assert token(client, "alice", "right", ATTACKER).status_code == 200
    assert token(client, "alice", "right", HOME).status_code == 401  # the address lock holds
    assert runner.invoke(args=["portus", "lockout", "clear"]).output.strip() == "lifted 1 lock"
    assert runner.invoke(args=["portus", "lockout", "list"]).output == ""
    session = app.appbuilder.session
    session.expire_all()
    actors = session.scalars(
        select(Activity.actor).where(Activity.kind == Kind.SIGN_IN_UNLOCKED.value)
    ).all()
    assert len(actors) == 2 and all(actor.startswith("cli:") for actor in actors)


def test_a_threshold_of_zero_never_locks(template_dir: Path, tmp_path: Path) -> None:
    app = make_app(
        template_dir,
        tmp_path / "data",
        **{**LOCKOUT_SETTINGS, "PORTUS_LOCKOUT_ACCOUNT_THRESHOLD": "0"},
    )
    with app.app_context():
        add_user(app, "alice", "right")
        client = app.test_client()
        for _ in range(ADDRESS_THRESHOLD - 1):
            token(client, "alice", "wrong", ATTACKER)
        assert token(client, "alice", "right", ATTACKER).status_code == 200
        assert app.appbuilder.session.scalars(select(SignInLock)).all() == []
        app.appbuilder.session.remove()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORTUS_LOCKOUT_ACCOUNT_THRESHOLD", "-1"),
        ("PORTUS_LOCKOUT_ADDRESS_THRESHOLD", "-1"),
        ("PORTUS_LOCKOUT_WINDOW", "0"),
        ("PORTUS_LOCKOUT_DURATION", "0"),
    ],
)
def test_settings_refuse_nonsense(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.load({name: value, "PORTUS_DATA_DIR": str(tmp_path)})
