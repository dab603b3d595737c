"""The LDAP client (portus_fab.auth.directory) against a real slapd: a right password gives the
person with their groups, every kind of wrong one gives None, and every way of getting no answer
(stopped, hanging, StartTLS without the CA, its own bind refused) is DirectoryUnreachable, within
the timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from portus_fab.auth.directory import Directory, DirectoryUnreachable
from tests.support.hanging import HangingServer
from tests.support.slapd import (
    ALICE,
    BOB,
    CAROL,
    DEVS_DN,
    OPS_DN,
    PEOPLE_DN,
    Slapd,
    ldap_settings,
    start_tls_settings,
)
from tests.support.wait import free_port

TIMEOUT = 0.5


def directory(slapd: Slapd, **overrides: Any) -> Directory:
    built = Directory.from_config(ldap_settings(slapd, **overrides), timeout=TIMEOUT)
    assert built is not None
    return built


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    with HangingServer() as server:
        yield server


def test_a_right_password_gives_the_person_and_their_groups(slapd: Slapd) -> None:
    identity = directory(slapd).authenticate(ALICE.uid, ALICE.password)
    assert identity is not None
    assert (identity.username, identity.dn) == ("alice", ALICE.dn)
    assert (identity.first_name, identity.last_name) == ("Alice", "Liddell")
    assert identity.email == "alice@example.org"
    assert sorted(group.lower() for group in identity.groups) == sorted([DEVS_DN, OPS_DN])


def test_the_username_is_the_directory_s_spelling(slapd: Slapd) -> None:
    identity = directory(slapd).authenticate("ALICE", ALICE.password)
    assert identity is not None and identity.username == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (ALICE.uid, "wrong"),
        (ALICE.uid, BOB.password),  # someone else's
        (ALICE.uid, ""),  # an empty password would be an anonymous bind
        ("nobody", "whatever"),
        (CAROL.uid, CAROL.password),  # disabled (ppolicy lock): her right password
        ("*", ALICE.password),  # a filter wildcard is a name, not a pattern
        ("alice)(uid=*", ALICE.password),
        ("", ALICE.password),
    ],
)
def test_every_wrong_sign_in_is_none(slapd: Slapd, username: str, password: str) -> None:
    assert directory(slapd).authenticate(username, password) is None


def test_a_search_filter_narrows_who_may_sign_in(slapd: Slapd) -> None:
    only_bob = directory(slapd, AUTH_LDAP_SEARCH_FILTER="(sn=Builder)")
    assert only_bob.authenticate(ALICE.uid, ALICE.password) is None
    assert only_bob.authenticate(BOB.uid, BOB.password) is not None


def test_direct_bind_with_a_username_format(slapd: Slapd) -> None:
    direct = directory(
        slapd,
        AUTH_LDAP_BIND_USER="",
        AUTH_LDAP_BIND_PASSWORD="",
        AUTH_LDAP_USERNAME_FORMAT=f"uid=%s,{PEOPLE_DN}",
    )
    identity = direct.authenticate(BOB.uid, BOB.password)
    assert identity is not None and identity.dn == BOB.dn and identity.groups == (DEVS_DN,)
    assert direct.authenticate(BOB.uid, "wrong") is None
    # DN characters in the name are escaped: no other entry can be named through it.
    assert direct.authenticate(f"bob,{PEOPLE_DN}", BOB.password) is None


def test_start_tls_with_the_ca(slapd: Slapd) -> None:
    tls = directory(slapd, **start_tls_settings(slapd))
    assert tls.authenticate(ALICE.uid, ALICE.password) is not None
    assert "StartTLS" in tls.ping(TIMEOUT)


def test_start_tls_without_the_ca_is_unreachable(slapd: Slapd) -> None:
    settings = {**start_tls_settings(slapd), "AUTH_LDAP_TLS_CACERTFILE": ""}
    untrusted = directory(slapd, **settings)
    with pytest.raises(DirectoryUnreachable, match="StartTLS"):
        untrusted.authenticate(ALICE.uid, ALICE.password)
    with pytest.raises(DirectoryUnreachable, match="StartTLS"):
        untrusted.ping(TIMEOUT)


def test_a_refused_bind_user_is_unreachable_not_a_wrong_password(slapd: Slapd) -> None:
    misconfigured = directory(slapd, AUTH_LDAP_BIND_PASSWORD="not-the-reader-password")
    with pytest.raises(DirectoryUnreachable, match="AUTH_LDAP_BIND_USER"):
        misconfigured.authenticate(ALICE.uid, ALICE.password)
    with pytest.raises(DirectoryUnreachable, match="AUTH_LDAP_BIND_PASSWORD"):
        misconfigured.ping(TIMEOUT)


def test_nothing_listening_is_unreachable(slapd: Slapd) -> None:
    closed = directory(slapd, AUTH_LDAP_SERVER=f"ldap://127.0.0.1:{free_port()}")
    with pytest.raises(DirectoryUnreachable):
        closed.authenticate(ALICE.uid, ALICE.password)
    with pytest.raises(DirectoryUnreachable):
        closed.ping(TIMEOUT)


@pytest.mark.parametrize("start_tls", [False, True], ids=["plain", "starttls"])
def test_a_hanging_directory_is_unreachable_within_the_timeout(
    slapd: Slapd, hanging: HangingServer, start_tls: bool
) -> None:
    settings = {"AUTH_LDAP_SERVER": f"ldap://127.0.0.1:{hanging.port}"}
    if start_tls:
        settings.update(start_tls_settings(slapd))
    wedged = directory(slapd, **settings)
    started = time.monotonic()
    with pytest.raises(DirectoryUnreachable):
        wedged.authenticate(ALICE.uid, ALICE.password)
    # The timeout bounds the sign-in in all, not each of its operations.
    assert time.monotonic() - started < TIMEOUT + 0.5
    started = time.monotonic()
    with pytest.raises(DirectoryUnreachable):
        wedged.ping(TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 0.5


def test_ping_proves_the_bind_user(slapd: Slapd) -> None:
    assert "bound as cn=reader" in directory(slapd).ping(TIMEOUT)
    anonymous = directory(slapd, AUTH_LDAP_BIND_USER="", AUTH_LDAP_BIND_PASSWORD="")
    assert "answers" in anonymous.ping(TIMEOUT)


def test_only_an_ldap_app_has_a_directory(slapd: Slapd) -> None:
    assert Directory.from_config({"AUTH_TYPE": 1}, timeout=TIMEOUT) is None
    with pytest.raises(ValueError, match="AUTH_LDAP_SERVER"):
        Directory.from_config(ldap_settings(slapd, AUTH_LDAP_SERVER=""), timeout=TIMEOUT)
    with pytest.raises(ValueError, match="not an LDAP URL"):
        Directory.from_config(ldap_settings(slapd, AUTH_LDAP_SERVER="slapd:389"), timeout=TIMEOUT)
    with pytest.raises(ValueError, match="AUTH_LDAP_SEARCH"):
        Directory.from_config(ldap_settings(slapd, AUTH_LDAP_SEARCH=""), timeout=TIMEOUT)
