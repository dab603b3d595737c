"""The token scope grammar: `type[(class)]:name:action[,action...]` (registry-protocol.md, 1)."""

from __future__ import annotations

import pytest

from portus_fab.auth.scopes import MAX_SCOPES, Scope, ScopeError, parse_scope, parse_scopes
from portus_fab.errors import Invalid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "repository:alice/app:pull",
            Scope("repository", "alice/app", ("pull",), None, "alice/app"),
        ),
        (
            "repository:alice/app:pull,push",
            Scope("repository", "alice/app", ("pull", "push"), None, "alice/app"),
        ),
        (
            "repository:busybox:pull",
            Scope("repository", "busybox", ("pull",), None, "busybox"),
        ),
        (
            "repository:team/app/sub:delete",
            Scope("repository", "team/app/sub", ("delete",), None, "team/app/sub"),
        ),
        (
            "repository:alice/app:*",
            Scope("repository", "alice/app", ("*",), None, "alice/app"),
        ),
        (
            "repository:localhost:5000/alice/app:pull",
            Scope("repository", "localhost:5000/alice/app", ("pull",), None, "alice/app"),
        ),
        (
            "repository:registry.example.com/a/b:push,pull",
            Scope("repository", "registry.example.com/a/b", ("push", "pull"), None, "a/b"),
        ),
        (
            "repository:localhost/app:pull",
            Scope("repository", "localhost/app", ("pull",), None, "app"),
        ),
        (
            "repository(plugin):x:pull",
            Scope("repository", "x", ("pull",), "plugin", "x"),
        ),
        (
            "repository(plugin):127.0.0.1:5000/ns/x:pull,push",
            Scope("repository", "127.0.0.1:5000/ns/x", ("pull", "push"), "plugin", "ns/x"),
        ),
        (
            "registry:catalog:*",
            Scope("registry", "catalog", ("*",), None, ""),
        ),
        (
            "repository:ns/a.b_c__d-e--f:pull",
            Scope("repository", "ns/a.b_c__d-e--f", ("pull",), None, "ns/a.b_c__d-e--f"),
        ),
        # A first component with a dot is a registry host, as docker reads it.
        (
            "repository:my.team/app:pull",
            Scope("repository", "my.team/app", ("pull",), None, "app"),
        ),
        # ... and so is one with an uppercase letter (distribution/reference, splitDockerDomain)
        (
            "repository:Alice/app:pull",
            Scope("repository", "Alice/app", ("pull",), None, "app"),
        ),
        (
            "repository:LOCALHOST/team/app:pull",
            Scope("repository", "LOCALHOST/team/app", ("pull",), None, "team/app"),
        ),
    ],
)
def test_parse_scope(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


def test_str_round_trips() -> None:
    for text in (
        "repository:localhost:5000/alice/app:pull,push",
        "repository(plugin):x:pull",
        "registry:catalog:*",
    ):
        assert str(parse_scope(text)) == text


@pytest.mark.parametrize(
    ("text", "actions"),
    [
        ("repository:alice/app:pull,pull", ("pull",)),
        ("repository:alice/app:push,pull,push,pull", ("push", "pull")),
        ("repository:alice/app:*,pull,*", ("*", "pull")),
        ("registry:catalog:*,*", ("*",)),
    ],
)
def test_actions_are_deduplicated_in_order(text: str, actions: tuple[str, ...]) -> None:
    assert parse_scope(text).actions == actions


def test_name_of_maximum_length_is_accepted() -> None:
    name = "a" * 255
    assert parse_scope(f"repository:{name}:pull").repository == name


def test_several_scopes_in_one_value_and_repeated_values() -> None:
    scopes = parse_scopes(
        [
            "repository:alice/app:pull,push repository:localhost:5000/bob/x:pull",
            "registry:catalog:*",
            "  repository:busybox:pull  ",
        ]
    )
    assert [(s.type, s.name, s.repository, s.actions) for s in scopes] == [
        ("repository", "alice/app", "alice/app", ("pull", "push")),
        ("repository", "localhost:5000/bob/x", "bob/x", ("pull",)),
        ("registry", "catalog", "", ("*",)),
        ("repository", "busybox", "busybox", ("pull",)),
    ]


def test_no_scope_is_an_empty_list() -> None:
    assert parse_scopes([]) == []
    assert parse_scopes(["", "  "]) == []


def test_exactly_max_scopes_are_accepted() -> None:
    values = [f"repository:ns/app{i}:pull" for i in range(MAX_SCOPES)]
    assert len(parse_scopes(values)) == MAX_SCOPES
    assert len(parse_scopes([" ".join(values)])) == MAX_SCOPES


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # structure
        ("repository", "expected type:name:actions"),
        ("", "expected type:name:actions"),
        ("repository:alice/app", "expected type:name:actions"),
        ("alice/app:pull", "expected type:name:actions"),
        ("repository::pull", "empty resource name"),
        ("repository:alice/app:", "empty action"),
        ("repository:alice/app:pull,", "empty action"),
        ("repository:alice/app:pull,,push", "empty action"),
        ("repository:alice/app:,pull", "empty action"),
        # actions
        ("repository:alice/app:read", "unknown action 'read'"),
        ("repository:alice/app:pull,PUSH", "unknown action 'PUSH'"),
        ("repository:alice/app:pull push", "unknown action 'pull push'"),
        # types and classes
        ("image:alice/app:pull", "unknown resource type 'image'"),
        ("Repository:alice/app:pull", "invalid resource type 'Repository'"),
        (":alice/app:pull", "invalid resource type ''"),
        ("repository(:alice/app:pull", "invalid resource type 'repository('"),
        ("repository():alice/app:pull", "invalid resource type 'repository()'"),
        ("repository(plugin:alice/app:pull", "invalid resource type 'repository(plugin'"),
        ("repository(Plugin):alice/app:pull", "invalid resource type 'repository(Plugin)'"),
        ("repository(a)(b):alice/app:pull", "invalid resource type 'repository(a)(b)'"),
        ("repository (plugin):alice/app:pull", "invalid resource type"),
        # registry scopes
        ("registry:foo:*", "the only registry scope is registry:catalog:*"),
        ("registry:catalog:pull", "the only registry scope is registry:catalog:*"),
        ("registry:catalog:*,pull", "the only registry scope is registry:catalog:*"),
        # repository names
        ("repository:Alice/App:pull", "component 'App' is invalid"),
        ("repository:Alice:pull", "component 'Alice' is invalid"),  # no '/': not a host
        ("repository:alice/App:pull", "component 'App' is invalid"),
        ("repository:/alice/app:pull", "component '' is invalid"),
        ("repository:-alice/app:pull", "component '-alice' is invalid"),
        ("repository:alice/.app:pull", "component '.app' is invalid"),
        ("repository:_alice/app:pull", "component '_alice' is invalid"),
        ("repository:alice//app:pull", "component '' is invalid"),
        ("repository:alice/app/:pull", "component '' is invalid"),
        ("repository:alice/app-:pull", "component 'app-' is invalid"),
        ("repository:alice/a..b:pull", "component 'a..b' is invalid"),
        ("repository:alice/a___b:pull", "component 'a___b' is invalid"),
        ("repository:alice/a b:pull", "component 'a b' is invalid"),
        ("repository:alice/app@sha256:pull", "invalid"),
        ("repository:localhost:5000:pull", "invalid"),
        ("repository:localhost:5000/:pull", "repository name is empty"),
        ("repository:" + "a" * 256 + ":pull", "256 characters long, at most 255"),
        ("repository:" + "a/" * 127 + "aa:pull", "256 characters long, at most 255"),
    ],
)
def test_malformed_scope(text: str, fragment: str) -> None:
    with pytest.raises(ScopeError) as caught:
        parse_scope(text)
    message = str(caught.value)
    assert fragment in message
    assert repr(text) in message  # the message names the scope the client sent


@pytest.mark.parametrize(
    "values",
    [
        ["repository:alice/app:pull", "repository:alice/app:bogus"],
        ["repository:alice/app:pull repository:alice/Bad:pull"],
    ],
)
def test_one_malformed_scope_fails_the_whole_list(values: list[str]) -> None:
    with pytest.raises(ScopeError):
        parse_scopes(values)


@pytest.mark.parametrize(
    "values",
    [
        [f"repository:ns/app{i}:pull" for i in range(MAX_SCOPES + 1)],
        [" ".join(f"repository:ns/app{i}:pull" for i in range(MAX_SCOPES + 1))],
        ["repository:ns/app:pull"] * (MAX_SCOPES + 1),
    ],
)
def test_too_many_scopes(values: list[str]) -> None:
    with pytest.raises(
        ScopeError, match=rf"too many scopes: {MAX_SCOPES + 1}, at most {MAX_SCOPES}"
    ):
        parse_scopes(values)


def test_scope_error_is_an_invalid_request() -> None:
    """Every surface maps portus_fab.errors once: the token endpoint's 400 INVALID_SCOPE."""
    assert issubclass(ScopeError, Invalid)
