"""Who the current browser user is, as the policy and the audit record see them."""

from __future__ import annotations

from flask import g, has_request_context, request

from portus_fab.access.policy import ANONYMOUS, Principal
from portus_fab.audit.origin import Origin
from portus_fab.auth.credentials import principal_for
from portus_fab.core import portus


def current_principal() -> Principal:
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False) or user.is_anonymous:
        return ANONYMOUS
    return principal_for(user, portus().admin_role)


def request_origin() -> Origin | None:
    """The audit origin of a change made during a request: the logged-in user (FAB's
    `g.user`) and the client's address; None outside a request."""
    if not has_request_context():
        return None
    user = getattr(g, "user", None)
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    actor = user.username if authenticated and not user.is_anonymous else "anonymous"
    return Origin(actor, request.remote_addr)


def request_address() -> str | None:
    return request.remote_addr if has_request_context() else None
