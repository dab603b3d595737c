"""Who the current browser user is, as the policy sees them."""

from __future__ import annotations

from flask import g

from portus_fab.access.policy import ANONYMOUS, Principal
from portus_fab.auth.credentials import principal_for
from portus_fab.core import portus


def current_principal() -> Principal:
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False) or user.is_anonymous:
        return ANONYMOUS
    return principal_for(user, portus().admin_role)
