"""The one way in (portus_fab.auth.authenticate) and what a token grants a principal with a
ceiling: the policy applies the ceiling, the token's access list only reflects it."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from flask import Flask

from portus_fab.access import management
from portus_fab.access.policy import ANONYMOUS, Action, Ceiling, Principal, PrincipalKind
from portus_fab.auth.access import resolve_access
from portus_fab.auth.authenticate import (
    AuthenticationRefused,
    authenticate,
    principal_named,
)
from portus_fab.auth.scopes import parse_scopes
from portus_fab.core import portus
from portus_fab.models.epoch import current_epoch
from tests.conftest import add_user


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def login(header: str | None, account: str | None = None) -> Principal:
    core = portus()
    epoch = current_epoch(core.engine)
    return authenticate(core.authentication, core.session, header, account=account, epoch=epoch)


@pytest.fixture
def people(app: Flask) -> None:
    add_user(app, "alice")
    add_user(app, "root", admin=True)
    add_user(app, "gone", active=False)
    management.create_namespace(app.appbuilder.session, "team")
    app.appbuilder.session.commit()


def test_each_credential_gives_a_principal_of_its_kind(app: Flask, people: None) -> None:
    assert login(None) is ANONYMOUS
    assert login("") is ANONYMOUS
    alice = login(basic("alice", "secret"))
    assert (alice.kind, alice.username, alice.is_admin, alice.ceiling) == (
        PrincipalKind.USER,
        "alice",
        False,
        None,
    )
    assert login(basic("root", "secret")).is_admin
    # Case-insensitive usernames, as FAB's login compares them.
    assert login(basic("ALICE", "secret")) == alice


@pytest.mark.parametrize(
    ("header", "account", "reason"),
    [
        (basic("alice", "wrong"), None, "invalid username or password"),
        (basic("gone", "secret"), None, "invalid username or password"),
        (basic("alice", "secret"), "root", "account 'root' does not match"),
        (None, "alice", "account 'alice' does not match"),
        ("Bearer x", None, "use HTTP Basic"),
    ],
)
def test_refusals_carry_their_reason(
    app: Flask, people: None, header: str | None, account: str | None, reason: str
) -> None:
    with pytest.raises(AuthenticationRefused) as refused:
        login(header, account)
    assert reason in refused.value.reason
    assert "secret" not in str(refused.value.claimed)


def test_explain_builds_the_principal_a_password_proves(app: Flask, people: None) -> None:
    core = portus()
    for username in ("alice", "root"):
        named = principal_named(core.authentication, core.session, username)
        assert named == login(basic(username, "secret"))
    # Disabled users are explained too (the policy says why they may do nothing).
    gone = principal_named(core.authentication, core.session, "gone")
    assert gone is not None and not gone.active
    assert principal_named(core.authentication, core.session, "ghost") is None


def grants(principal: Principal, *scopes: str) -> tuple[dict[str, list[str]], list[str]]:
    core = portus()
    policy = core.policy()
    access = resolve_access(policy.explain, principal, parse_scopes(list(scopes)))
    return {f"{e['type']}:{e['name']}": e["actions"] for e in access.entries}, access.denials


def capped(principal: Principal, actions: set[Action], *namespaces: str) -> Principal:
    limit = frozenset(namespaces) if namespaces else None
    return replace(
        principal, kind=PrincipalKind.ACCESS_TOKEN, ceiling=Ceiling(frozenset(actions), limit)
    )


def test_a_read_only_credential_only_pulls(app: Flask, people: None) -> None:
    alice = login(basic("alice", "secret"))
    read_only = capped(alice, {Action.PULL})
    entries, denials = grants(read_only, "repository:alice/app:pull,push,delete")
    assert entries == {"repository:alice/app": ["pull"]}
    assert "push on alice/app denied: this access token may only pull" in denials
    # `*` means every action to the registry: never for a capped credential.
    assert grants(read_only, "repository:alice/app:*")[0] == {"repository:alice/app": []}
    assert grants(alice, "repository:alice/app:*")[0] == {"repository:alice/app": ["*"]}


def test_a_namespace_limited_credential_acts_nowhere_else(app: Flask, people: None) -> None:
    root = login(basic("root", "secret"))
    for_team = capped(root, set(Action), "team")
    entries, denials = grants(
        for_team, "repository:team/app:pull,push", "repository:alice/app:pull", "registry:catalog:*"
    )
    assert entries == {"repository:team/app": ["pull", "push"], "repository:alice/app": []}
    assert "pull on alice/app denied: this access token is limited to team" in denials
    assert any(d.startswith("registry:catalog:* denied: this access token") for d in denials)
    assert grants(root, "registry:catalog:*")[0] == {"registry:catalog": ["*"]}
