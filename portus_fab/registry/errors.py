"""Registry client errors (own module so manifests.py and client.py need not import each other)."""

from __future__ import annotations


class RegistryError(Exception):
    """The registry answered with an error, or its answer made no sense."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the registry's error code (NAME_UNKNOWN, ...) when it sent one


class RegistryUnavailable(RegistryError):
    """Connection error, timeout, 5xx or 429: worth retrying later."""
