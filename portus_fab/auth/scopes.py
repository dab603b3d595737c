"""The token scope grammar: `type[(class)]:name:action[,action...]`.

The name may carry `host[:port]/` and so colons, which is why the type is read before the FIRST
colon and the actions after the LAST one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from portus_fab.errors import Invalid
from portus_fab.registry.names import split_registry_host, validate_repository_name

_TYPE_RE = re.compile(r"(?P<type>[a-z0-9]+)(?:\((?P<cls>[a-z0-9]+)\))?")
REPOSITORY_ACTIONS = ("pull", "push", "delete", "*")
MAX_SCOPES = 64


class ScopeError(Invalid):
    """A scope the client sent cannot be understood; the message says exactly why."""


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # as asked (echoed back in the token)
    actions: tuple[str, ...]
    resource_class: str | None = None
    repository: str = ""  # the name without any host[:port]/ prefix, for the policy

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(self.actions)}"


_HOST_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?"
)


def judged_repository(name: str) -> tuple[str | None, str]:
    """(registry host or None, the repository the policy judges) for a repository name as a
    client may send it: a leading registry host, as docker reads one
    (registry.names.is_registry_host), is dropped. `portus explain` reads names with it too, so
    it judges every name as the token endpoint does."""
    host, repository = split_registry_host(name)
    if host is not None and not _HOST_RE.fullmatch(host):
        raise ScopeError(f"{host!r} is not a valid registry host")
    problem = validate_repository_name(repository)
    if problem:
        raise ScopeError(problem)
    return host, repository


# Clients ask for the same few scopes over and over; a Scope is immutable, and a refusal (an
# exception) is never cached.
@lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope:
    type_part, sep, remainder = text.partition(":")
    name, sep2, action_part = remainder.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(f"scope {text!r} is malformed: expected type:name:actions")
    match = _TYPE_RE.fullmatch(type_part)
    if match is None:
        raise ScopeError(f"scope {text!r} has an invalid resource type {type_part!r}")
    resource_type, resource_class = match["type"], match["cls"]
    actions = tuple(dict.fromkeys(action_part.split(",")))  # de-duplicated, order kept
    if not name:
        raise ScopeError(f"scope {text!r} has an empty resource name")
    if any(not action for action in actions):
        raise ScopeError(f"scope {text!r} has an empty action")
    if resource_type == "registry":
        if name != "catalog" or actions != ("*",):
            raise ScopeError(f"scope {text!r}: the only registry scope is registry:catalog:*")
        return Scope("registry", name, actions, resource_class, "")
    if resource_type != "repository":
        raise ScopeError(
            f"scope {text!r} has unknown resource type {resource_type!r}: "
            "expected repository or registry"
        )
    unknown = [a for a in actions if a not in REPOSITORY_ACTIONS]
    if unknown:
        raise ScopeError(
            f"scope {text!r} has unknown action {unknown[0]!r}: expected pull, push, delete or *"
        )
    try:
        _, repository = judged_repository(name)
    except ScopeError as error:
        raise ScopeError(f"scope {text!r}: {error}") from None
    return Scope("repository", name, actions, resource_class, repository)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Each `scope` query value may itself hold several space-separated scopes."""
    texts = [part for value in values for part in value.split()]
    if len(texts) > MAX_SCOPES:
        raise ScopeError(f"too many scopes: {len(texts)}, at most {MAX_SCOPES}")
    return [parse_scope(text) for text in texts]
