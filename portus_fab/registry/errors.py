"""Registry client errors (own module so manifests.py and client.py need not import each other)."""

from __future__ import annotations


class RegistryError(Exception):
    """The registry answered with an error, or its answer made no sense.

    `str(error)` is for admins and the log: it names the registry's URL and the HTTP library's
    own words. `public_message` is what anyone may be told."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the registry's error code (NAME_UNKNOWN, ...) when it sent one

    @property
    def public_message(self) -> str:
        """The registry's status and error code only: neither names a host or a setting."""
        if self.status is None:
            return "the registry's answer made no sense"
        code = f" {self.code}" if self.code else ""
        return f"the registry refused (HTTP {self.status}{code})"


class RegistryUnavailable(RegistryError):
    """Connection error, timeout, 5xx or 429: worth retrying later."""

    @property
    def public_message(self) -> str:
        return "the registry did not answer; try again later"
