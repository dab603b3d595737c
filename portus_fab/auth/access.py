"""What a token grants: for each asked scope, the intersection of asked and allowed actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portus_fab.access.policy import (
    ALL_ACTIONS,
    Action,
    Explanation,
    Policy,
    Principal,
    catalog_refusal,
)
from portus_fab.auth.scopes import Scope

WILDCARD = "*"


@dataclass(slots=True)
class ResolvedAccess:
    entries: list[dict[str, Any]] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)  # one line per refused action, with why


def granted_actions(explanation: Explanation, asked: tuple[str, ...]) -> tuple[list[str], dict]:
    """Actions to put in the token, and the refused ones with their reason.

    `*` means every action to the registry, so it is granted only to whom holds them all.
    """
    allowed = explanation.allowed
    granted: list[str] = []
    refused: dict[str, str] = {}
    for action in asked:
        if action == WILDCARD:
            if allowed == ALL_ACTIONS:
                granted.append(WILDCARD)
            else:
                missing = sorted(ALL_ACTIONS - allowed)
                reasons = explanation.denial_reasons(missing)
                refused[WILDCARD] = "; ".join(f"{a}: {r}" for a, r in reasons.items())
        elif Action(action) in allowed:
            granted.append(action)
        else:
            refused[action] = explanation.denial_reasons([Action(action)])[Action(action)]
    return granted, refused


class DecisionCache:
    """The policy's explanations by (principal, repository), valid while the policy epoch they
    were computed at is current (portus_fab.models.epoch). Bounded; cleared when full."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: dict[tuple[Principal, str], tuple[int, Explanation]] = {}
        self._max_entries = max_entries

    def explain(
        self, policy: Policy, principal: Principal, repository: str, epoch: int
    ) -> Explanation:
        key = (principal, repository)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        explanation = policy.explain(principal, repository)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (epoch, explanation)
        return explanation

    def clear(self) -> None:
        self._entries.clear()


def resolve_access(
    explain: Callable[[Principal, str], Explanation], principal: Principal, scopes: list[Scope]
) -> ResolvedAccess:
    """`explain` is the policy's (possibly cached) explanation of a principal on a repository."""
    result = ResolvedAccess()
    explanations: dict[str, Explanation] = {}
    for scope in scopes:
        if scope.type == "registry":
            refusal = catalog_refusal(principal)
            if refusal is None:
                result.entries.append({"type": "registry", "name": "catalog", "actions": ["*"]})
            else:
                result.denials.append(f"registry:catalog:* denied: {refusal}")
            continue
        if scope.repository not in explanations:
            explanations[scope.repository] = explain(principal, scope.repository)
        granted, refused = granted_actions(explanations[scope.repository], scope.actions)
        # The name the policy judged, never a host-prefixed variant: rights on `app` must not
        # become rights on a registry repository literally named `my.host/app`.
        entry = {"type": "repository", "name": scope.repository, "actions": granted}
        result.entries.append(entry)
        result.denials.extend(
            f"{action} on {scope.repository} denied: {reason}" for action, reason in refused.items()
        )
    return result
