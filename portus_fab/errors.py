"""The domain's errors: what went wrong, in terms every surface can answer in its own protocol.

Domain functions raise these; each surface maps them once (views/admin.py: a form error or a
flash; cli: one line and exit 1; the token endpoint: its JSON body and status; later the REST
API: 401, 404, 409, 422, 403). The message is meant for the person who asked: it names no
secret and no internal address.
"""

from __future__ import annotations


class PortusError(Exception):
    """A request the domain refuses; `str(error)` is the message to show."""


class Unauthenticated(PortusError):
    """The credentials prove no one (the token endpoint answers 401)."""


class NotFound(PortusError):
    """What the request names does not exist (a user, a team, a namespace)."""


class Conflict(PortusError):
    """The request clashes with what is stored (a duplicate, the last owner leaving)."""


class Invalid(PortusError):
    """The request itself is malformed (a bad name, an unknown role or visibility)."""


class Forbidden(PortusError):
    """The principal may not do this."""
