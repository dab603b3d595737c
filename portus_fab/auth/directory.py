"""Asking the company directory (LDAP) whether a password is right, and who its owner is.

FAB's `auth_user_ldap` does the same from the same settings, but it turns every LDAP error into
a failed login (so a directory that is down looks like a wrong password, and the lockout counts
it) and sets no timeout (a directory that hangs holds a web worker for ever). This client reads
FAB's AUTH_LDAP_* settings once, bounds each sign-in by PORTUS_LDAP_TIMEOUT in all, and tells
three answers apart: an identity (the right password), None (a wrong password, an unknown,
disabled or ambiguous account) and DirectoryUnreachable (no answer could be had).

Built on python-ldap, the library FAB itself uses for LDAP: its settings mean exactly what FAB's
documentation says, TLS goes through the system's libldap (its CA handling, its ldap.conf).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ldap
from flask_appbuilder.const import AUTH_LDAP
from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars

log = logging.getLogger(__name__)

# No answer from the directory, as opposed to an answer that says no.
_UNREACHABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY)
# A bind with the user's password that proves nothing: wrong password, no such entry, a disabled
# account (OpenLDAP's ppolicy and AD both answer invalidCredentials for it), or a server that
# refuses the bind for the account's own state.
_REFUSED = (
    ldap.INVALID_CREDENTIALS,
    ldap.NO_SUCH_OBJECT,
    ldap.INVALID_DN_SYNTAX,
    ldap.UNWILLING_TO_PERFORM,
    ldap.INAPPROPRIATE_AUTH,
)


class DirectoryUnreachable(Exception):
    """The directory gave no answer: down, too slow, StartTLS failed, or it refused portus_fab's
    own bind. `detail` names the cause for the log and the admins (never a password)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DirectoryIdentity:
    """Who the directory says a right password belongs to."""

    username: str  # as the directory spells it (AUTH_LDAP_UID_FIELD), else as given
    dn: str | None  # the person's entry; None when AUTH_LDAP_SEARCH is not set (nothing read)
    first_name: str
    last_name: str
    email: str
    groups: tuple[str, ...]  # group DNs, from AUTH_LDAP_GROUP_FIELD (memberOf)


def _text(values: list[bytes] | None) -> str:
    return values[0].decode("utf-8", "replace") if values else ""


@dataclass(frozen=True, slots=True)
class Directory:
    """FAB's LDAP settings, read once, and the timeout of one sign-in."""

    server: str
    search_base: str
    search_filter: str
    uid_field: str
    bind_user: str
    bind_password: str
    username_format: str
    append_domain: str
    firstname_field: str
    lastname_field: str
    email_field: str
    group_field: str
    use_tls: bool
    allow_self_signed: bool
    tls_demand: bool
    tls_cacertfile: str
    tls_cacertdir: str
    tls_certfile: str
    tls_keyfile: str
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, timeout: float) -> Directory | None:
        """The directory of an AUTH_LDAP app, None for any other AUTH_TYPE. Reads FAB's keys
        with FAB's defaults (its security manager sets them only for AUTH_LDAP)."""
        if config.get("AUTH_TYPE") != AUTH_LDAP:
            return None
        if not config.get("AUTH_LDAP_SERVER"):
            raise ValueError("AUTH_TYPE is AUTH_LDAP but AUTH_LDAP_SERVER is not set")
        try:
            ldap.initialize(config["AUTH_LDAP_SERVER"])  # parses the URL, connects to nothing
        except ldap.LDAPError:
            raise ValueError(
                f"AUTH_LDAP_SERVER {config['AUTH_LDAP_SERVER']!r} is not an LDAP URL "
                "(ldap://host:port or ldaps://host:port)"
            ) from None
        if config.get("AUTH_LDAP_BIND_USER") and not config.get("AUTH_LDAP_SEARCH"):
            raise ValueError("AUTH_LDAP_BIND_USER needs AUTH_LDAP_SEARCH (where to find people)")
        return cls(
            server=config["AUTH_LDAP_SERVER"],
            search_base=config.get("AUTH_LDAP_SEARCH", ""),
            search_filter=config.get("AUTH_LDAP_SEARCH_FILTER", ""),
            uid_field=config.get("AUTH_LDAP_UID_FIELD", "uid"),
            bind_user=config.get("AUTH_LDAP_BIND_USER", ""),
            bind_password=config.get("AUTH_LDAP_BIND_PASSWORD", ""),
            username_format=config.get("AUTH_LDAP_USERNAME_FORMAT", ""),
            append_domain=config.get("AUTH_LDAP_APPEND_DOMAIN", ""),
            firstname_field=config.get("AUTH_LDAP_FIRSTNAME_FIELD", "givenName"),
            lastname_field=config.get("AUTH_LDAP_LASTNAME_FIELD", "sn"),
            email_field=config.get("AUTH_LDAP_EMAIL_FIELD", "mail"),
            group_field=config.get("AUTH_LDAP_GROUP_FIELD", "memberOf"),
            use_tls=bool(config.get("AUTH_LDAP_USE_TLS", False)),
            allow_self_signed=bool(config.get("AUTH_LDAP_ALLOW_SELF_SIGNED", False)),
            tls_demand=bool(config.get("AUTH_LDAP_TLS_DEMAND", False)),
            tls_cacertfile=config.get("AUTH_LDAP_TLS_CACERTFILE", ""),
            tls_cacertdir=config.get("AUTH_LDAP_TLS_CACERTDIR", ""),
            tls_certfile=config.get("AUTH_LDAP_TLS_CERTFILE", ""),
            tls_keyfile=config.get("AUTH_LDAP_TLS_KEYFILE", ""),
            timeout=timeout,
        )

    def authenticate(self, username: str, password: str) -> DirectoryIdentity | None:
        """The identity the password proves, or None. Raises DirectoryUnreachable."""
        # An empty password makes a simple bind anonymous, which many servers accept: never ask.
        if not username or not password or "\x00" in username:
            return None
        deadline = time.monotonic() + self.timeout
        connection = self._connect(deadline)
        try:
            if self.bind_user:
                return self._indirect(connection, deadline, username, password)
            return self._direct(connection, deadline, username, password)
        except _UNREACHABLE as error:
            raise DirectoryUnreachable(f"{self.server}: {_describe(error)}") from None
        except ldap.LDAPError as error:
            # An answer no sign-in can be decided on (a search base that does not exist, a
            # filter the server refuses): the configuration, not the user, is wrong.
            log.error("the directory %s answered %s", self.server, _describe(error))
            raise DirectoryUnreachable(f"{self.server}: {_describe(error)}") from None
        finally:
            _close(connection)

    def ping(self, timeout: float) -> str:
        """Connect (StartTLS too when configured) and bind as AUTH_LDAP_BIND_USER, or
        anonymously: what was proved. Raises DirectoryUnreachable."""
        deadline = time.monotonic() + timeout
        connection = self._connect(deadline)
        try:
            self._bound(connection, deadline, self.bind_user, self.bind_password)
        except ldap.INVALID_CREDENTIALS:
            if self.bind_user:
                raise DirectoryUnreachable(
                    f"{self.server} refuses AUTH_LDAP_BIND_USER {self.bind_user!r}: check "
                    "AUTH_LDAP_BIND_PASSWORD"
                ) from None
            return f"{self.server} answers (anonymous binds refused)"
        except _UNREACHABLE as error:
            raise DirectoryUnreachable(f"{self.server}: {_describe(error)}") from None
        except ldap.LDAPError as error:
            # The server answered, with a refusal of an anonymous bind: it is there.
            return f"{self.server} answers ({_describe(error)})"
        finally:
            _close(connection)
        who = f"as {self.bind_user}" if self.bind_user else "anonymously"
        tls = ", StartTLS" if self.use_tls else ""
        return f"{self.server} answers (bound {who}{tls})"

    # -- the two flows of FAB's auth_user_ldap ---------------------------------------------

    def _indirect(
        self, connection: Any, deadline: float, username: str, password: str
    ) -> DirectoryIdentity | None:
        """Bind as the service account, find the person, bind as them with the password."""
        try:
            self._bound(connection, deadline, self.bind_user, self.bind_password)
        except ldap.INVALID_CREDENTIALS:
            raise DirectoryUnreachable(
                f"{self.server} refuses AUTH_LDAP_BIND_USER {self.bind_user!r}"
            ) from None
        found = self._search(connection, deadline, username)
        if found is None:
            return None
        dn, attributes = found
        if not self._binds(connection, deadline, dn, password):
            return None
        return self._identity(username, dn, attributes)

    def _direct(
        self, connection: Any, deadline: float, username: str, password: str
    ) -> DirectoryIdentity | None:
        """Bind with the username made into a bind name, then read the person (if
        AUTH_LDAP_SEARCH is set) with their own rights."""
        bind_name = username
        if self.append_domain:
            bind_name = f"{bind_name}@{self.append_domain}"
        if self.username_format:
            bind_name = self.username_format % escape_dn_chars(bind_name)
        if not self._binds(connection, deadline, bind_name, password):
            return None
        if not self.search_base:
            return DirectoryIdentity(username, None, "", "", "", ())
        found = self._search(connection, deadline, username)
        if found is None:
            return None
        return self._identity(username, *found)

    # -- LDAP operations, each within what is left of the deadline --------------------------

    def _connect(self, deadline: float) -> Any:
        connection = ldap.initialize(self.server)
        connection.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        connection.set_option(ldap.OPT_REFERRALS, 0)
        # Per connection, not process-wide as FAB sets them: the health check and a sign-in
        # running at once must not change each other's TLS context.
        for option, value in (
            (ldap.OPT_X_TLS_CACERTFILE, self.tls_cacertfile),
            (ldap.OPT_X_TLS_CACERTDIR, self.tls_cacertdir),
            (ldap.OPT_X_TLS_CERTFILE, self.tls_certfile),
            (ldap.OPT_X_TLS_KEYFILE, self.tls_keyfile),
        ):
            if value:
                connection.set_option(option, value)
        if self.allow_self_signed:
            connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_ALLOW)
        elif self.tls_demand:
            connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if self.use_tls:
            _within(connection, deadline)
            try:
                connection.start_tls_s()
            except ldap.LDAPError as error:
                _close(connection)
                raise DirectoryUnreachable(
                    f"StartTLS with {self.server} failed: {_describe(error)}"
                ) from None
        return connection

    def _bound(self, connection: Any, deadline: float, who: str, password: str) -> None:
        _within(connection, deadline)
        connection.simple_bind_s(who, password)

    def _binds(self, connection: Any, deadline: float, who: str, password: str) -> bool:
        try:
            self._bound(connection, deadline, who, password)
        except _REFUSED:
            return False
        return True

    def _search(
        self, connection: Any, deadline: float, username: str
    ) -> tuple[str, dict[str, list[bytes]]] | None:
        """The one entry whose AUTH_LDAP_UID_FIELD is `username`: None for none or several."""
        match = f"({self.uid_field}={escape_filter_chars(username)})"
        query = f"(&{self.search_filter}{match})" if self.search_filter else match
        fields = [
            self.uid_field,
            self.firstname_field,
            self.lastname_field,
            self.email_field,
            self.group_field,
        ]
        _within(connection, deadline)
        found = [
            (dn, attributes)
            for dn, attributes in connection.search_s(
                self.search_base, ldap.SCOPE_SUBTREE, query, fields
            )
            if dn is not None and isinstance(attributes, dict)  # not a search referral
        ]
        if len(found) > 1:
            log.error(
                "the directory has %d entries for %s in %s", len(found), query, self.search_base
            )
        return found[0] if len(found) == 1 else None

    def _identity(
        self, username: str, dn: str, attributes: dict[str, list[bytes]]
    ) -> DirectoryIdentity:
        return DirectoryIdentity(
            username=_text(attributes.get(self.uid_field)) or username,
            dn=dn,
            first_name=_text(attributes.get(self.firstname_field)),
            last_name=_text(attributes.get(self.lastname_field)),
            email=_text(attributes.get(self.email_field)),
            groups=tuple(
                value.decode("utf-8", "replace")
                for value in attributes.get(self.group_field, [])
                if value
            ),
        )


def _within(connection: Any, deadline: float) -> None:
    """Give the next operation (its connect included) only what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DirectoryUnreachable("no answer within PORTUS_LDAP_TIMEOUT")
    connection.set_option(ldap.OPT_NETWORK_TIMEOUT, left)
    connection.set_option(ldap.OPT_TIMEOUT, left)


def _close(connection: Any) -> None:
    # A server that went away mid-sign-in may fail the unbind too: there is nothing to undo.
    with contextlib.suppress(ldap.LDAPError):
        connection.unbind_s()


def _describe(error: ldap.LDAPError) -> str:
    """python-ldap's error as one line: its description and the server's extra text."""
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    text = str(info.get("desc") or type(error).__name__)
    if info.get("info"):
        text += f" ({info['info']})"
    return text
