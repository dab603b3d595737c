"""Which first components docker reads as a registry host, and that no namespace can be one.

The rule (distribution/reference `splitDockerDomain`): a first component followed by '/' is a
host if it holds '.' or ':', is 'localhost', or is not all lowercase.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portus_fab.access.management import validate_namespace_name
from portus_fab.auth.scopes import ScopeError, parse_scope
from portus_fab.registry.names import is_registry_host, split_registry_host

HOSTS = [
    "localhost",
    "LOCALHOST",
    "Localhost",
    "my.team",
    "registry.example.com",
    "127.0.0.1",
    "host:5000",
    "localhost:5000",
    "[::1]:5000",
    "Alice",
    "aB",
    "ÄBC",  # uppercase beyond ASCII: Go's ToLower changes it too
    ".",
    ":",
]
NOT_HOSTS = ["alice", "localhost-2", "localhost2", "local-host", "a_b", "a__b", "a-b", "0", "é"]


@pytest.mark.parametrize("component", HOSTS)
def test_hosts(component: str) -> None:
    assert is_registry_host(component)
    assert split_registry_host(f"{component}/app") == (component, "app")
    # Only a component followed by '/' is a host: alone it is the whole name.
    assert split_registry_host(component) == (None, component)


@pytest.mark.parametrize("component", NOT_HOSTS)
def test_not_hosts(component: str) -> None:
    assert not is_registry_host(component)
    assert split_registry_host(f"{component}/app") == (None, f"{component}/app")


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("localhost/app", ("localhost", "app")),
        ("localhost:5000/team/app", ("localhost:5000", "team/app")),
        ("team/my.app", (None, "team/my.app")),  # only the first component can be a host
        ("team/localhost/app", (None, "team/localhost/app")),
        ("app", (None, "app")),
        ("", (None, "")),
    ],
)
def test_split_registry_host(name: str, split: tuple[str | None, str]) -> None:
    assert split_registry_host(name) == split


@pytest.mark.parametrize("name", [h for h in HOSTS if h.isascii()])
def test_no_namespace_is_named_like_a_host(name: str) -> None:
    assert validate_namespace_name(name) is not None


def test_localhost_is_refused_as_a_host() -> None:
    message = validate_namespace_name("localhost")
    assert message is not None
    assert "registry host" in message
    assert validate_namespace_name("localhost-2") is None


NO_DATABASE = settings(database=None)  # write nothing into the working tree


@NO_DATABASE
@given(st.text(alphabet="localhstLOCAHST.:-_0/", min_size=1, max_size=12))
@example("localhost")
def test_a_namespace_is_never_stripped_from_a_scope(first: str) -> None:
    """Whatever a namespace may be named, the token endpoint judges `<namespace>/app` as such:
    the namespace rules and the scope parser use the same host rule."""
    if validate_namespace_name(first) is not None:
        return
    assert not is_registry_host(first)
    assert parse_scope(f"repository:{first}/app:pull").repository == f"{first}/app"


@NO_DATABASE
@given(st.text(alphabet="localhstLOCAHST.:-_0", min_size=1, max_size=12))
@example("localhost")
def test_a_host_is_always_stripped_from_a_scope(first: str) -> None:
    if not is_registry_host(first):
        return
    try:
        scope = parse_scope(f"repository:{first}/team/app:pull")
    except ScopeError:
        return  # not a valid host name either: refused, never judged as a namespace
    assert scope.repository == "team/app"
