"""OpenID Connect claims to FAB's user information (portus_fab.auth.oidc): which claim names the
user, which values are refused, the groups claim, and the command users without a password
log in with."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from flask_appbuilder.const import AUTH_DB, AUTH_LDAP, AUTH_OAUTH, AUTH_REMOTE_USER, AUTH_SAML

from portus_fab.access.policy import INTERNAL_IDENTITY
from portus_fab.auth import oidc
from portus_fab.errors import Unauthenticated

FULL = {
    "sub": "3f1c0d9e-uuid",
    "preferred_username": "dana",
    "email": "dana@example.test",
    "email_verified": True,
    "given_name": "Dana",
    "family_name": "Scully",
    "groups": ["devs", "auditors"],
}


def info(claims: dict[str, Any], groups_claim: str = "groups") -> oidc.OidcUserInfo:
    return oidc.user_info(claims, groups_claim)


def test_standard_claims_become_fabs_user_information() -> None:
    assert info(FULL) == {
        "username": "dana",
        "email": "dana@example.test",
        "first_name": "Dana",
        "last_name": "Scully",
        "role_keys": ["devs", "auditors"],
    }


@pytest.mark.parametrize(
    ("claims", "username"),
    [
        ({"sub": "s", "email": "dana@example.test"}, "dana@example.test"),
        ({"sub": "s", "preferred_username": "  dana  "}, "dana"),
        ({"sub": "s", "preferred_username": ""}, "s"),
        ({"sub": "s", "preferred_username": 42, "email": "d@x.test"}, "d@x.test"),
        # An address the provider has not verified could be anyone's.
        ({"sub": "s", "email": "boss@example.test", "email_verified": False}, "s"),
        ({"sub": "s", "email": "boss@example.test", "email_verified": "false"}, "s"),
        ({"sub": "s", "email": "d@x.test", "email_verified": "true"}, "d@x.test"),
        # HTTP Basic ends the username at the first colon.
        ({"sub": "s", "preferred_username": "dana:admin", "email": "d@x.test"}, "d@x.test"),
        # A robot account's form (namespace+name).
        ({"sub": "s", "preferred_username": "dana+ci"}, "s"),
        ({"sub": "s", "preferred_username": "dana scully"}, "s"),
        ({"sub": "s", "preferred_username": "dana\nadmin"}, "s"),
        ({"sub": "s", "preferred_username": "-rm"}, "s"),
        ({"sub": "s", "preferred_username": "<b>dana</b>"}, "s"),
        ({"sub": "s", "preferred_username": INTERNAL_IDENTITY}, "s"),
        ({"sub": "s", "preferred_username": INTERNAL_IDENTITY.upper()}, "s"),
        ({"sub": "s", "preferred_username": "x" * (oidc.USERNAME_MAX + 1)}, "s"),
        ({"sub": "s", "preferred_username": "x" * oidc.USERNAME_MAX}, "x" * oidc.USERNAME_MAX),
        ({"sub": "s", "preferred_username": "José.Müller"}, "José.Müller"),
    ],
)
def test_username_is_the_first_safe_of_preferred_username_verified_email_and_sub(
    claims: dict[str, Any], username: str
) -> None:
    assert info(claims)["username"] == username


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"sub": ""},
        {"sub": "a:b", "preferred_username": "c d", "email": "e f"},
        {"sub": "bad sub", "email": "ok@x.test", "email_verified": False},
    ],
)
def test_no_safe_name_in_any_claim_refuses_the_sign_in(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated):
        info(claims)


def test_missing_names_and_email_are_empty_and_unverified_email_is_dropped() -> None:
    assert info({"sub": "s"}) == {
        "username": "s",
        "email": "",
        "first_name": "",
        "last_name": "",
        "role_keys": [],
    }
    unverified = info({"sub": "s", "email": "boss@example.test", "email_verified": False})
    assert unverified["email"] == ""
    assert info({"sub": "s", "name": "Dana Scully"})["first_name"] == "Dana Scully"


def test_values_longer_than_fabs_columns_are_cut_or_dropped() -> None:
    long = info(
        {
            "sub": "s",
            "given_name": "g" * 100,
            "family_name": "f" * 100,
            "email": "e" * oidc.EMAIL_MAX + "@x.test",
        }
    )
    assert long["first_name"] == "g" * oidc.NAME_MAX
    assert long["last_name"] == "f" * oidc.NAME_MAX
    assert long["email"] == ""


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        (["devs", "ops"], ["devs", "ops"]),
        ("devs", ["devs"]),
        (("devs",), ["devs"]),
        (None, []),
        ({"roles": ["devs"]}, []),
        (["devs", 7, None, "", ["ops"]], ["devs"]),
        (True, []),
    ],
)
def test_groups_claim_gives_only_its_string_values(value: Any, groups: list[str]) -> None:
    assert info({"sub": "s", "groups": value})["role_keys"] == groups


def test_the_groups_claim_is_the_one_named() -> None:
    claims = {"sub": "s", "groups": ["from-groups"], "roles": ["from-roles"]}
    assert info(claims, "roles")["role_keys"] == ["from-roles"]
    assert info(claims, "groups")["role_keys"] == ["from-groups"]
    # Claim names may hold dots (Auth0's namespaced claims): read as one name, not a path.
    assert info({"sub": "s", "https://x.test/groups": ["a"]}, "https://x.test/groups")[
        "role_keys"
    ] == ["a"]
    assert info(claims, "absent")["role_keys"] == []


def test_userinfo_completes_the_id_token_for_the_same_subject_only() -> None:
    id_token = {"sub": "s", "preferred_username": "dana", "groups": ["old"]}
    userinfo = {"sub": "s", "email": "dana@example.test", "groups": ["new"]}
    assert oidc.merged_claims(id_token, userinfo) == {
        "sub": "s",
        "preferred_username": "dana",
        "email": "dana@example.test",
        "groups": ["new"],
    }
    assert oidc.merged_claims(id_token, None) == id_token
    assert oidc.merged_claims(None, userinfo) == userinfo
    with pytest.raises(Unauthenticated, match="another subject"):
        oidc.merged_claims(id_token, {"sub": "someone-else", "preferred_username": "admin"})
    with pytest.raises(Unauthenticated, match="another subject"):
        oidc.merged_claims(id_token, {"preferred_username": "admin"})
    with pytest.raises(Unauthenticated):
        oidc.merged_claims(None, None)


@pytest.mark.parametrize(
    ("auth_type", "has_password"),
    [
        (AUTH_DB, True),
        (AUTH_LDAP, True),
        (AUTH_OAUTH, False),
        (AUTH_REMOTE_USER, False),
        (AUTH_SAML, False),
    ],
)
def test_who_has_a_registry_password(auth_type: int, has_password: bool) -> None:
    assert oidc.has_registry_password(auth_type) is has_password


def test_docker_login_command_reads_the_token_from_stdin_and_quotes_what_needs_it() -> None:
    command = oidc.docker_login_command("registry.example.test:5000", "dana@example.test")
    assert (
        command == "docker login -u dana@example.test --password-stdin registry.example.test:5000"
    )
    quoted = oidc.docker_login_command("reg.test", "it's me")
    assert shlex.split(quoted) == [
        "docker",
        "login",
        "-u",
        "it's me",
        "--password-stdin",
        "reg.test",
    ]
