"""A real OpenLDAP directory for the LDAP tests: Debian's `slapd`, on a free loopback port.

The directory (dc=example,dc=org, an mdb database) is built from a `slapd.conf` generated here,
then filled over LDAP as its root DN, so the overlays see every write as they would in
production:

- `memberof` keeps each person's `memberOf` in step with the groups' `member` values, so FAB's
  `AUTH_LDAP_GROUP_FIELD = "memberOf"` reads the groups from the person's own entry;
- `ppolicy` disables carol: her entry has `pwdAccountLockedTime: 000001010000Z` (locked until an
  administrator unlocks it), so a bind with her right password gets invalidCredentials, as any
  disabled account in an OpenLDAP directory does. The default policy does not lock on failures,
  so tests of wrong passwords never lock alice or bob.

StartTLS uses a CA and a server certificate for 127.0.0.1/localhost made for each directory
(`ca_file`). The `cn=Monitor` database counts binds (`bind_count()`), so a test can prove that a
returning client did not reach the directory.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import ldap
import ldap.modlist
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask_appbuilder.const import AUTH_LDAP

from .services import Process
from .wait import free_port

SLAPD = "/usr/sbin/slapd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
POLICY_DN = f"cn=default,ou=policies,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
READER_DN = f"cn=reader,{BASE_DN}"
READER_PASSWORD = "reader-secret"
# ppolicy's "locked until an administrator unlocks it".
LOCKED_FOREVER = "000001010000Z"


@dataclass(frozen=True)
class Person:
    uid: str
    password: str
    given_name: str
    surname: str

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE_DN}"

    @property
    def mail(self) -> str:
        return f"{self.uid}@example.org"


ALICE = Person("alice", "alice-directory-pw", "Alice", "Liddell")
BOB = Person("bob", "bob-directory-pw", "Bob", "Builder")
CAROL = Person("carol", "carol-directory-pw", "Carol", "Danvers")  # disabled (ppolicy lock)
PEOPLE = (ALICE, BOB, CAROL)
DEVS_DN = f"cn=devs,{GROUPS_DN}"
OPS_DN = f"cn=ops,{GROUPS_DN}"
# groupOfNames needs at least one member, so a group cannot be emptied (remove_member refuses).
GROUPS: dict[str, tuple[Person, ...]] = {DEVS_DN: (ALICE, BOB), OPS_DN: (ALICE,)}


def ssha(password: str) -> str:
    """An `{SSHA}` userPassword value, as slappasswd writes it."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entries() -> list[tuple[str, dict[str, list[str]]]]:
    """The seed content, parents first."""
    entries: list[tuple[str, dict[str, list[str]]]] = [
        (BASE_DN, {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Ex"]}),
        (PEOPLE_DN, {"objectClass": ["organizationalUnit"], "ou": ["people"]}),
        (GROUPS_DN, {"objectClass": ["organizationalUnit"], "ou": ["groups"]}),
        (f"ou=policies,{BASE_DN}", {"objectClass": ["organizationalUnit"], "ou": ["policies"]}),
        (
            POLICY_DN,
            {
                "objectClass": ["organizationalRole", "pwdPolicy"],
                "cn": ["default"],
                "pwdAttribute": ["userPassword"],
                # Honour pwdAccountLockedTime; without pwdMaxFailure no failure count locks.
                "pwdLockout": ["TRUE"],
            },
        ),
        (
            READER_DN,
            {
                "objectClass": ["organizationalRole", "simpleSecurityObject"],
                "cn": ["reader"],
                "userPassword": [ssha(READER_PASSWORD)],
            },
        ),
    ]
    for person in PEOPLE:
        attributes = {
            "objectClass": ["inetOrgPerson"],
            "uid": [person.uid],
            "cn": [f"{person.given_name} {person.surname}"],
            "givenName": [person.given_name],
            "sn": [person.surname],
            "mail": [person.mail],
            "userPassword": [ssha(person.password)],
        }
        if person is CAROL:
            attributes["pwdAccountLockedTime"] = [LOCKED_FOREVER]
        entries.append((person.dn, attributes))
    for group, members in GROUPS.items():
        name = group.split(",", 1)[0].removeprefix("cn=")
        entries.append(
            (
                group,
                {
                    "objectClass": ["groupOfNames"],
                    "cn": [name],
                    "member": [member.dn for member in members],
                },
            )
        )
    return entries


def _encode(attributes: dict[str, list[str]]) -> list[tuple[str, list[bytes]]]:
    return ldap.modlist.addModlist({k: [v.encode() for v in vs] for k, vs in attributes.items()})


def write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portus test LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def _slapd_conf(directory: Path, ca: Path, cert: Path, key: Path) -> str:
    schemas = ("core", "cosine", "inetorgperson", "nis")
    return "\n".join(
        [
            *(f"include {SCHEMA_DIR / name}.schema" for name in schemas),
            f"pidfile {directory / 'slapd.pid'}",
            f"argsfile {directory / 'slapd.args'}",
            f"modulepath {MODULE_PATH}",
            "moduleload back_mdb",
            "moduleload memberof",
            "moduleload ppolicy",
            f"TLSCACertificateFile {ca}",
            f"TLSCertificateFile {cert}",
            f"TLSCertificateKeyFile {key}",
            "",
            "database mdb",
            f"suffix {BASE_DN}",
            f"rootdn {ADMIN_DN}",
            f"rootpw {ssha(ADMIN_PASSWORD)}",
            f"directory {directory / 'data'}",
            "maxsize 67108864",
            "index objectClass,uid,member eq",
            # Passwords: only a bind may compare them; people and the reader read the rest.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by users read by * none",
            "overlay memberof",
            "memberof-group-oc groupOfNames",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "memberof-refint TRUE",
            "overlay ppolicy",
            f'ppolicy_default "{POLICY_DN}"',
            "",
            "database monitor",
            f'access to * by dn.exact="{ADMIN_DN}" read by * none',
            "",
        ]
    )


class Slapd(Process):
    """`slapd` in the foreground on ``ldap://127.0.0.1:PORT``, data in ``workdir``.

    ``stop()`` and ``start()`` keep the port and the data (a directory that goes away and comes
    back); ``restore()`` puts the seed content back after a test changed it.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        # Outside pytest's deep tmp dirs: slapd's paths stay short and readable in its log.
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="portus-slapd-"))
        self.port = free_port()
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self._ca, cert, key = write_tls_files(self.workdir)
        self.config_path = self.workdir / "slapd.conf"
        self.config_path.write_text(_slapd_conf(self.workdir, self._ca, cert, key))
        self._seeded = False
        self._own_binds = 0  # the fixture's own binds since slapd started, for bind_count()
        super().__init__(
            "slapd",
            # -d: stay in the foreground (the log level "none" keeps the log to errors);
            # root in CI and here, so no -u/-g: the files are ours.
            [SLAPD, "-d", "none", "-f", str(self.config_path), "-h", self.url],
            log_dir=self.workdir,
            ready=self._answers,
            startup_timeout=20,
        )

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server certificate StartTLS presents."""
        return self._ca

    def start(self) -> Self:
        self._own_binds = 0
        super().start()
        if not self._seeded:
            self._seed()
            self._seeded = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- connections ------------------------------------------------------------------------

    def connect(self, *, start_tls: bool = False) -> Any:
        """An unbound python-ldap connection; with ``start_tls`` it trusts only ``ca_file``."""
        connection = ldap.initialize(self.url)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        connection.set_option(ldap.OPT_TIMEOUT, 5)
        connection.set_option(ldap.OPT_REFERRALS, 0)
        if start_tls:
            connection.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self._ca))
            connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
            connection.start_tls_s()
        return connection

    def admin(self) -> Any:
        connection = self.connect()
        connection.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        self._own_binds += 1
        return connection

    def _answers(self) -> bool:
        self.admin().unbind_s()
        return True

    # -- content ----------------------------------------------------------------------------

    def _seed(self) -> None:
        connection = self.admin()
        try:
            for dn, attributes in _entries():
                connection.add_s(dn, _encode(attributes))
        finally:
            connection.unbind_s()

    def restore(self) -> None:
        """Running again, with exactly the seed content (anything a test added is removed)."""
        if not self.running:
            self.start()
        connection = self.admin()
        try:
            found = [
                dn for dn, _ in connection.search_s(BASE_DN, ldap.SCOPE_SUBTREE, attrlist=["1.1"])
            ]
            # Groups first (so memberof never has to empty one), then children before parents.
            found.sort(key=lambda dn: (not dn.endswith(GROUPS_DN) or dn == GROUPS_DN, -len(dn)))
            for dn in found:
                connection.delete_s(dn)
            for dn, attributes in _entries():
                connection.add_s(dn, _encode(attributes))
        finally:
            connection.unbind_s()

    def add_member(self, group_dn: str, member_dn: str) -> None:
        self._modify(group_dn, [(ldap.MOD_ADD, "member", [member_dn.encode()])])

    def remove_member(self, group_dn: str, member_dn: str) -> None:
        self._modify(group_dn, [(ldap.MOD_DELETE, "member", [member_dn.encode()])])

    def set_password(self, person_dn: str, password: str) -> None:
        """The administrator's password reset (the Password Modify extended operation)."""
        connection = self.admin()
        try:
            connection.passwd_s(person_dn, None, password)
        finally:
            connection.unbind_s()

    def add_person(self, person: Person, *, groups: tuple[str, ...] = ()) -> None:
        """A new person (gone again at ``restore()``), optionally in some groups."""
        attributes = {
            "objectClass": ["inetOrgPerson"],
            "uid": [person.uid],
            "cn": [f"{person.given_name} {person.surname}"],
            "givenName": [person.given_name],
            "sn": [person.surname],
            "mail": [person.mail],
            "userPassword": [ssha(person.password)],
        }
        connection = self.admin()
        try:
            connection.add_s(person.dn, _encode(attributes))
        finally:
            connection.unbind_s()
        for group in groups:
            self.add_member(group, person.dn)

    def lock(self, person_dn: str) -> None:
        """Disable an account the way carol is disabled."""
        self._modify(
            person_dn, [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [LOCKED_FOREVER.encode()])]
        )

    def groups_of(self, person_dn: str) -> list[str]:
        """The person's `memberOf` values, as the memberof overlay keeps them."""
        connection = self.admin()
        try:
            [(_, attributes)] = connection.search_s(
                person_dn, ldap.SCOPE_BASE, attrlist=["memberOf"]
            )
        finally:
            connection.unbind_s()
        return sorted(value.decode() for value in attributes.get("memberOf", []))

    def bind_count(self) -> int:
        """Binds others made since slapd started: the `cn=Monitor` counter less the fixture's
        own administrator binds (including the one made to read it)."""
        connection = self.admin()
        try:
            [(_, attributes)] = connection.search_s(
                "cn=Bind,cn=Operations,cn=Monitor",
                ldap.SCOPE_BASE,
                attrlist=["monitorOpCompleted"],
            )
        finally:
            connection.unbind_s()
        return int(attributes["monitorOpCompleted"][0]) - self._own_binds

    def _modify(self, dn: str, changes: list[tuple[int, str, list[bytes]]]) -> None:
        connection = self.admin()
        try:
            connection.modify_s(dn, changes)
        finally:
            connection.unbind_s()


def ldap_settings(directory: Slapd, **overrides: Any) -> dict[str, Any]:
    """FAB configuration for an app that signs people in against ``directory``: an indirect
    bind as the read-only reader, users created at first login, roles from the two groups."""
    return {
        "AUTH_TYPE": AUTH_LDAP,
        "AUTH_LDAP_SERVER": directory.url,
        "AUTH_LDAP_SEARCH": PEOPLE_DN,
        "AUTH_LDAP_UID_FIELD": "uid",
        "AUTH_LDAP_BIND_USER": READER_DN,
        "AUTH_LDAP_BIND_PASSWORD": READER_PASSWORD,
        "AUTH_LDAP_FIRSTNAME_FIELD": "givenName",
        "AUTH_LDAP_LASTNAME_FIELD": "sn",
        "AUTH_LDAP_EMAIL_FIELD": "mail",
        "AUTH_LDAP_GROUP_FIELD": "memberOf",
        "AUTH_USER_REGISTRATION": True,
        "AUTH_USER_REGISTRATION_ROLE": "User",
        "AUTH_ROLES_MAPPING": {DEVS_DN: ["User"], OPS_DN: ["Admin"]},
        "AUTH_ROLES_SYNC_AT_LOGIN": True,
        **overrides,
    }


def start_tls_settings(directory: Slapd) -> dict[str, Any]:
    """The extra FAB settings for StartTLS, trusting only the directory's own CA."""
    return {
        "AUTH_LDAP_USE_TLS": True,
        "AUTH_LDAP_TLS_DEMAND": True,
        "AUTH_LDAP_TLS_CACERTFILE": str(directory.ca_file),
    }


def running_directory() -> Iterator[Slapd]:
    """A started directory, stopped and removed afterwards (the body of a pytest fixture)."""
    directory = Slapd()
    try:
        directory.start()
        yield directory
    finally:
        directory.stop()
        shutil.rmtree(directory.workdir, ignore_errors=True)
