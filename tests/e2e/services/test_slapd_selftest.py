"""Self-test of tests/support/slapd.py: the directory the LDAP tests sign in against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap
import pytest

from tests.conftest import make_app
from tests.support.slapd import (
    ALICE,
    BOB,
    CAROL,
    DEVS_DN,
    OPS_DN,
    PEOPLE_DN,
    READER_DN,
    READER_PASSWORD,
    Person,
    Slapd,
    ldap_settings,
    start_tls_settings,
)


def bind(directory: Slapd, dn: str, password: str, *, start_tls: bool = False) -> str:
    connection = directory.connect(start_tls=start_tls)
    try:
        connection.simple_bind_s(dn, password)
        return str(connection.whoami_s())
    finally:
        connection.unbind_s()


def test_people_bind_and_the_disabled_account_is_refused(slapd: Slapd) -> None:
    assert bind(slapd, ALICE.dn, ALICE.password) == f"dn:{ALICE.dn}"
    assert bind(slapd, BOB.dn, BOB.password) == f"dn:{BOB.dn}"
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        bind(slapd, ALICE.dn, "not-her-password")
    # Her right password: ppolicy's pwdAccountLockedTime refuses it like a wrong one.
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        bind(slapd, CAROL.dn, CAROL.password)
    # Failed binds do not lock anyone out (the policy has no pwdMaxFailure).
    for _ in range(5):
        with pytest.raises(ldap.INVALID_CREDENTIALS):
            bind(slapd, BOB.dn, "wrong")
    assert bind(slapd, BOB.dn, BOB.password) == f"dn:{BOB.dn}"


def test_start_tls_with_the_fixture_ca(slapd: Slapd) -> None:
    assert bind(slapd, ALICE.dn, ALICE.password, start_tls=True) == f"dn:{ALICE.dn}"
    connection = ldap.initialize(slapd.url)
    connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
    connection.set_option(ldap.OPT_X_TLS_CACERTFILE, "/etc/ssl/certs/ca-certificates.crt")
    connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    with pytest.raises(ldap.CONNECT_ERROR):  # the machine's CAs do not know this one
        connection.start_tls_s()


def test_reader_finds_people_with_their_groups(slapd: Slapd) -> None:
    connection = slapd.connect()
    connection.simple_bind_s(READER_DN, READER_PASSWORD)
    [(dn, attributes)] = connection.search_s(
        PEOPLE_DN, ldap.SCOPE_SUBTREE, "(uid=alice)", ["givenName", "sn", "mail", "memberOf"]
    )
    connection.unbind_s()
    assert dn == ALICE.dn
    assert attributes["givenName"] == [b"Alice"]
    assert attributes["mail"] == [b"alice@example.org"]
    assert sorted(attributes["memberOf"]) == [DEVS_DN.encode(), OPS_DN.encode()]
    assert "userPassword" not in attributes


def test_changes_stop_start_and_restore(ldap_directory: Slapd) -> None:
    directory = ldap_directory
    assert directory.groups_of(BOB.dn) == [DEVS_DN]
    directory.remove_member(DEVS_DN, BOB.dn)
    directory.add_member(OPS_DN, BOB.dn)
    assert directory.groups_of(BOB.dn) == [OPS_DN]
    directory.set_password(ALICE.dn, "changed")
    dave = Person("dave", "dave-pw", "Dave", "Grohl")
    directory.add_person(dave, groups=(DEVS_DN,))
    assert directory.groups_of(dave.dn) == [DEVS_DN]

    before = directory.bind_count()
    bind(directory, dave.dn, dave.password)
    assert directory.bind_count() == before + 1

    url = directory.url
    directory.stop()
    with pytest.raises(ldap.SERVER_DOWN):
        bind(directory, ALICE.dn, "changed")
    directory.start()
    assert directory.url == url
    assert bind(directory, ALICE.dn, "changed") == f"dn:{ALICE.dn}"  # same data

    directory.restore()
    assert directory.groups_of(BOB.dn) == [DEVS_DN]
    assert bind(directory, ALICE.dn, ALICE.password) == f"dn:{ALICE.dn}"
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        bind(directory, dave.dn, dave.password)
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        bind(directory, CAROL.dn, CAROL.password)


def test_fab_signs_in_with_the_settings(
    template_dir: Path, tmp_path: Path, ldap_config: dict[str, Any]
) -> None:
    """`ldap_settings` is a working FAB configuration: FAB's own LDAP sign-in creates alice
    with her names, mail and the roles of her two groups, and refuses carol."""
    app = make_app(template_dir, tmp_path / "data", **ldap_config)
    # The sign-in counts failures per client address: it runs inside a request.
    with app.test_request_context():
        sm = app.appbuilder.sm
        user = sm.auth_user_ldap("alice", ALICE.password)
        assert user is not None
        assert (user.first_name, user.last_name, user.email) == ("Alice", "Liddell", ALICE.mail)
        assert sorted(role.name for role in user.roles) == ["Admin", "User"]
        assert sm.auth_user_ldap("carol", CAROL.password) is None
        assert sm.auth_user_ldap("bob", "wrong") is None
        app.appbuilder.session.remove()


def test_fab_signs_in_over_start_tls(template_dir: Path, tmp_path: Path, slapd: Slapd) -> None:
    app = make_app(
        template_dir, tmp_path / "data", **ldap_settings(slapd, **start_tls_settings(slapd))
    )
    with app.test_request_context():
        user = app.appbuilder.sm.auth_user_ldap("bob", BOB.password)
        assert user is not None
        assert [role.name for role in user.roles] == ["User"]
        app.appbuilder.session.remove()
