"""Every portus_fab setting in one table: name, default, meaning.

A setting is read from the Flask config first (an existing FAB app may set it there), then from the
environment variable of the same name, then from its default. Defaults that depend on other settings
(the database inside the data dir, the service name from the registry URL) are derived here, once.
"""

from __future__ import annotations

import json
import os
import runpy
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

DEFAULT_PORT = 5080


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _json_mapping(value: Any) -> Mapping[str, Any]:
    """A Python mapping (config file) or its JSON text (environment)."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return value


def _rate_limit(value: Any) -> str | None:
    text = str(value).strip()
    if text.lower() == "off":
        return None
    parse_many(text)  # a typo must stop the app, not leave sign-in unlimited
    return text


@dataclass(frozen=True, slots=True)
class SettingSpec:
    name: str
    default: str | None
    parse: Callable[[Any], Any]
    meaning: str


# The README's settings table is generated from (and tested against) this tuple.
SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "PORTUS_CONFIG_FILE",
        None,
        str,
        "a Python file of settings read after config.py's defaults (FAB's AUTH_*, "
        "OAUTH_PROVIDERS and any PORTUS_* setting; the environment only)",
    ),
    SettingSpec(
        "PORTUS_DATA_DIR", "./instance", str, "where SQLite, generated keys and secrets live"
    ),
    SettingSpec(
        "PORTUS_DATABASE_URL",
        None,
        str,
        "SQLAlchemy URL (default: SQLite file `portus.db` in the data dir)",
    ),
    SettingSpec(
        "PORTUS_SECRET_KEY",
        None,
        str,
        "Flask secret (default: generated once, kept in the data dir)",
    ),
    SettingSpec("PORTUS_HOST", "127.0.0.1", str, "where `python run.py` listens"),
    SettingSpec("PORTUS_PORT", str(DEFAULT_PORT), int, "port `python run.py` listens on"),
    SettingSpec(
        "PORTUS_WEB_WORKERS", "2", int, "gunicorn worker processes `python run.py` serves with"
    ),
    SettingSpec(
        "PORTUS_WEB_THREADS",
        "1",
        int,
        "threads per worker: 1 is gunicorn's sync worker (fastest for tokens), more a gthread "
        "worker (holds up better when requests wait on a slow registry)",
    ),
    SettingSpec(
        "PORTUS_PUBLIC_URL",
        None,
        str,
        "base URL clients and the registry use to reach portus_fab (default: http://HOST:PORT)",
    ),
    SettingSpec(
        "PORTUS_REGISTRY_URL",
        "http://127.0.0.1:5000",
        str,
        "base URL portus_fab uses to reach the registry API",
    ),
    SettingSpec(
        "PORTUS_REGISTRY_CA",
        None,
        str,
        "CA bundle to verify the registry's TLS certificate (default: system CAs)",
    ),
    SettingSpec(
        "PORTUS_REGISTRY_SERVICE",
        None,
        str,
        "the registry's `auth.token.service`, the token `aud` "
        "(default: host:port of the registry URL)",
    ),
    SettingSpec("PORTUS_TOKEN_ISSUER", "portus_fab", str, "the token `iss`"),
    SettingSpec(
        "PORTUS_TOKEN_TTL",
        "1800",
        int,
        "token lifetime in seconds (60 at least; short lifetimes make long pushes fail)",
    ),
    SettingSpec(
        "PORTUS_TOKEN_KEY",
        None,
        str,
        "PEM private key signing tokens, RSA or EC (default: generated in the data dir)",
    ),
    SettingSpec(
        "PORTUS_TOKEN_CERT",
        None,
        str,
        "PEM certificate of that key (default: generated in the data dir)",
    ),
    SettingSpec(
        "PORTUS_TOKEN_ALGORITHM",
        "ES256",
        str,
        "key type generated when no key is configured: ES256 (EC P-256) or RS256 (RSA 2048, "
        "ten times costlier to sign); a key already in the data dir is kept",
    ),
    SettingSpec(
        "PORTUS_WEBHOOK_SECRET",
        None,
        str,
        "bearer secret the registry sends with notifications "
        "(default: generated once, kept in the data dir)",
    ),
    SettingSpec(
        "PORTUS_CREDENTIAL_HASH_KEY",
        None,
        str,
        "key of the HMAC every stored token and robot secret is hashed with (default: generated "
        "once, kept in the data dir; changing it invalidates every token)",
    ),
    SettingSpec(
        "PORTUS_ACCESS_TOKEN_DEFAULT_DAYS",
        "90",
        int,
        "days a personal access token lasts when its creator names no expiry",
    ),
    SettingSpec(
        "PORTUS_ACCESS_TOKEN_MAX_DAYS",
        "366",
        int,
        "the longest expiry a personal access token may be given, in days",
    ),
    SettingSpec(
        "PORTUS_ACCESS_TOKEN_ALLOW_NO_EXPIRY",
        "false",
        _bool,
        "personal access tokens may be created that never expire",
    ),
    SettingSpec(
        "PORTUS_REGISTRY_TIMEOUT",
        "5",
        float,
        "seconds the registry may take to accept a connection or to send the next bytes of an "
        "answer, for each request",
    ),
    SettingSpec(
        "PORTUS_REGISTRY_DEADLINE",
        "15",
        float,
        "seconds a page may spend on the registry in all (a delete of many digests included)",
    ),
    SettingSpec(
        "PORTUS_HEALTH_TIMEOUT",
        "1",
        float,
        "seconds `/health`'s checks of the registry and the broker may take; checks still "
        "running after that answer failing",
    ),
    SettingSpec(
        "PORTUS_HEALTH_CACHE_TTL",
        "10",
        float,
        "seconds `/health` answers from its last checks before it checks again",
    ),
    SettingSpec(
        "PORTUS_LDAP_TIMEOUT",
        "5",
        float,
        "seconds a sign-in may spend on the directory (AUTH_LDAP) in all, connecting, StartTLS, "
        "binds and search included; past it the directory counts as unreachable",
    ),
    SettingSpec(
        "PORTUS_DELETE_BY_CONTRIBUTORS",
        "false",
        _bool,
        "contributors may delete images, not only owners",
    ),
    SettingSpec(
        "PORTUS_CREDENTIAL_CACHE_TTL",
        "60",
        int,
        "seconds a verified password is remembered by the token endpoint (0: off)",
    ),
    SettingSpec(
        "PORTUS_BROKER_URL",
        None,
        str,
        "Celery broker, e.g. redis://host:6379/0 (default: an SQLite broker "
        "in the data dir, for the embedded mode)",
    ),
    SettingSpec(
        "PORTUS_SWEEP_INTERVAL",
        "60",
        int,
        "seconds between sweeps that re-enqueue tags never enriched",
    ),
    SettingSpec(
        "PORTUS_SYNC_INTERVAL",
        "3600",
        int,
        "seconds between catalog syncs with the registry (0: only `flask portus sync`)",
    ),
    SettingSpec(
        "PORTUS_EMBEDDED_WORKER",
        "true",
        _bool,
        "`python run.py` also starts a Celery worker and beat beside the web server",
    ),
    SettingSpec(
        "PORTUS_AUTO_MIGRATE",
        "true",
        _bool,
        "each process brings the database schema to the code's at start (false: deployments "
        "that run `flask portus db upgrade` as a step of their own)",
    ),
    SettingSpec(
        "PORTUS_USER_ROLE",
        "User",
        str,
        "FAB role given the screens every user needs (browse, manage what they own)",
    ),
    SettingSpec(
        "PORTUS_ANONYMOUS_BROWSE",
        "true",
        _bool,
        "anonymous visitors may browse public repositories",
    ),
    SettingSpec(
        "PORTUS_LOGIN_RATE_LIMIT",
        "10 per minute",
        _rate_limit,
        "failed sign-ins allowed from one address, in Flask-Limiter's notation, before sign-in "
        "answers 429 (`off`: no limit)",
    ),
    SettingSpec(
        "PORTUS_LOCKOUT_ACCOUNT_THRESHOLD",
        "10",
        int,
        "failed sign-ins for one account from one address, within the window, that lock that "
        "account from that address, on the web and the token endpoint alike (0: never)",
    ),
    SettingSpec(
        "PORTUS_LOCKOUT_ADDRESS_THRESHOLD",
        "50",
        int,
        "failed sign-ins from one address, for any accounts, within the window, that lock "
        "every account from that address (0: never)",
    ),
    SettingSpec(
        "PORTUS_LOCKOUT_WINDOW",
        "900",
        int,
        "seconds over which failed sign-ins are counted towards a lock",
    ),
    SettingSpec(
        "PORTUS_GROUP_TEAMS",
        "{}",
        _json_mapping,
        "directory or identity-provider groups whose members are team members: "
        '`{"cn=devs,ou=groups,dc=example,dc=org": ["devs", "contributor"]}` (a group may give '
        "a list of such pairs), synced at each sign-in (JSON in the environment, a dict in "
        "the config file)",
    ),
    SettingSpec(
        "PORTUS_OIDC_GROUPS_CLAIM",
        "groups",
        str,
        "the OpenID Connect claim (ID token or userinfo) that lists a user's groups: the keys "
        "AUTH_ROLES_MAPPING and PORTUS_GROUP_TEAMS map",
    ),
    SettingSpec(
        "PORTUS_LOCKOUT_DURATION",
        "900",
        int,
        "seconds a lock lasts (an admin may lift it sooner)",
    ),
)

SETTING_NAMES = frozenset(spec.name for spec in SPECS)


def _raw(config: Mapping[str, Any], name: str, default: str | None) -> Any:
    value = config.get(name)
    if value is None or value == "":
        value = os.environ.get(name) or default
    return value


def make_data_dir(data_dir: str | os.PathLike[str]) -> None:
    """Create the data dir, if missing, for its owner only: it holds the database, the signing
    key and the secrets. A directory that exists keeps the mode its administrator gave it."""
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)


def persistent_secret(data_dir: str | os.PathLike[str], name: str) -> str:
    """A random secret created on first use and kept (owner-readable only) in the data dir."""
    path = Path(data_dir) / name
    if not path.exists():
        make_data_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str
    port: int
    web_workers: int
    web_threads: int
    public_url: str
    registry_url: str
    registry_ca: str | None
    registry_service: str
    token_issuer: str
    token_ttl: int
    token_key: str | None
    token_cert: str | None
    token_algorithm: str
    webhook_secret: str
    credential_hash_key: str
    access_token_default_days: int
    access_token_max_days: int
    access_token_allow_no_expiry: bool
    registry_timeout: float
    registry_deadline: float
    health_timeout: float
    health_cache_ttl: float
    ldap_timeout: float
    delete_by_contributors: bool
    credential_cache_ttl: int
    broker_url: str
    sweep_interval: int
    sync_interval: int
    embedded_worker: bool
    auto_migrate: bool
    user_role: str
    anonymous_browse: bool
    login_rate_limit: str | None
    lockout_account_threshold: int
    lockout_address_threshold: int
    lockout_window: int
    lockout_duration: int
    group_teams: Mapping[str, Any]  # as given; portus_fab.access.group_teams parses it
    oidc_groups_claim: str

    @property
    def token_realm(self) -> str:
        return f"{self.public_url}/v2/token"

    @property
    def webhook_url(self) -> str:
        return f"{self.public_url}/v2/webhooks/events"

    @property
    def registry_host(self) -> str:
        """host:port clients put in front of image names (`docker pull HOST/ns/repo`)."""
        return urlsplit(self.registry_url).netloc

    @classmethod
    def load(cls, config: Mapping[str, Any]) -> Settings:
        raw = {spec.name: _raw(config, spec.name, spec.default) for spec in SPECS}
        value = {
            spec.name: None if raw[spec.name] is None else spec.parse(raw[spec.name])
            for spec in SPECS
        }
        data_dir = Path(value["PORTUS_DATA_DIR"]).resolve()
        host, port = value["PORTUS_HOST"], value["PORTUS_PORT"]
        registry_url = value["PORTUS_REGISTRY_URL"].rstrip("/")
        if value["PORTUS_TOKEN_TTL"] < 60:
            raise ValueError("PORTUS_TOKEN_TTL must be at least 60 seconds (registry leeway)")
        default_days = value["PORTUS_ACCESS_TOKEN_DEFAULT_DAYS"]
        if not 1 <= default_days <= value["PORTUS_ACCESS_TOKEN_MAX_DAYS"]:
            raise ValueError(
                "PORTUS_ACCESS_TOKEN_DEFAULT_DAYS must be at least 1 and at most "
                "PORTUS_ACCESS_TOKEN_MAX_DAYS"
            )
        for name in ("PORTUS_WEB_WORKERS", "PORTUS_WEB_THREADS"):
            if value[name] < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("PORTUS_LOCKOUT_WINDOW", "PORTUS_LOCKOUT_DURATION"):
            if value[name] < 1:
                raise ValueError(f"{name} must be at least 1 second")
        for name in ("PORTUS_LOCKOUT_ACCOUNT_THRESHOLD", "PORTUS_LOCKOUT_ADDRESS_THRESHOLD"):
            if value[name] < 0:
                raise ValueError(f"{name} must be 0 (never) or more")
        # No time at all would fail every request: a mistake, not a setting.
        bounds = (
            "PORTUS_REGISTRY_TIMEOUT",
            "PORTUS_REGISTRY_DEADLINE",
            "PORTUS_HEALTH_TIMEOUT",
            "PORTUS_LDAP_TIMEOUT",
        )
        for name in bounds:
            if value[name] <= 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        return cls(
            data_dir=data_dir,
            database_url=value["PORTUS_DATABASE_URL"] or f"sqlite:///{data_dir / 'portus.db'}",
            host=host,
            port=port,
            web_workers=value["PORTUS_WEB_WORKERS"],
            web_threads=value["PORTUS_WEB_THREADS"],
            public_url=(value["PORTUS_PUBLIC_URL"] or f"http://{host}:{port}").rstrip("/"),
            registry_url=registry_url,
            registry_ca=value["PORTUS_REGISTRY_CA"],
            registry_service=value["PORTUS_REGISTRY_SERVICE"] or urlsplit(registry_url).netloc,
            token_issuer=value["PORTUS_TOKEN_ISSUER"],
            token_ttl=value["PORTUS_TOKEN_TTL"],
            token_key=value["PORTUS_TOKEN_KEY"],
            token_cert=value["PORTUS_TOKEN_CERT"],
            token_algorithm=value["PORTUS_TOKEN_ALGORITHM"].upper(),
            webhook_secret=value["PORTUS_WEBHOOK_SECRET"]
            or persistent_secret(data_dir, "webhook_secret"),
            credential_hash_key=value["PORTUS_CREDENTIAL_HASH_KEY"]
            or persistent_secret(data_dir, "credential_hash_key"),
            access_token_default_days=value["PORTUS_ACCESS_TOKEN_DEFAULT_DAYS"],
            access_token_max_days=value["PORTUS_ACCESS_TOKEN_MAX_DAYS"],
            access_token_allow_no_expiry=value["PORTUS_ACCESS_TOKEN_ALLOW_NO_EXPIRY"],
            registry_timeout=value["PORTUS_REGISTRY_TIMEOUT"],
            registry_deadline=value["PORTUS_REGISTRY_DEADLINE"],
            health_timeout=value["PORTUS_HEALTH_TIMEOUT"],
            health_cache_ttl=value["PORTUS_HEALTH_CACHE_TTL"],
            ldap_timeout=value["PORTUS_LDAP_TIMEOUT"],
            delete_by_contributors=value["PORTUS_DELETE_BY_CONTRIBUTORS"],
            credential_cache_ttl=value["PORTUS_CREDENTIAL_CACHE_TTL"],
            broker_url=value["PORTUS_BROKER_URL"] or f"sqla+sqlite:///{data_dir / 'broker.db'}",
            sweep_interval=value["PORTUS_SWEEP_INTERVAL"],
            sync_interval=value["PORTUS_SYNC_INTERVAL"],
            embedded_worker=value["PORTUS_EMBEDDED_WORKER"],
            auto_migrate=value["PORTUS_AUTO_MIGRATE"],
            user_role=value["PORTUS_USER_ROLE"],
            anonymous_browse=value["PORTUS_ANONYMOUS_BROWSE"],
            login_rate_limit=value["PORTUS_LOGIN_RATE_LIMIT"],
            lockout_account_threshold=value["PORTUS_LOCKOUT_ACCOUNT_THRESHOLD"],
            lockout_address_threshold=value["PORTUS_LOCKOUT_ADDRESS_THRESHOLD"],
            lockout_window=value["PORTUS_LOCKOUT_WINDOW"],
            lockout_duration=value["PORTUS_LOCKOUT_DURATION"],
            group_teams=value["PORTUS_GROUP_TEAMS"],
            oidc_groups_claim=value["PORTUS_OIDC_GROUPS_CLAIM"],
        )


def load_config_file(path: str | None) -> dict[str, Any]:
    """The upper-case names a Python configuration file defines (PORTUS_CONFIG_FILE), the way
    Superset's SUPERSET_CONFIG_PATH and Airflow's webserver_config.py are read: FAB's own settings
    (AUTH_TYPE, AUTH_LDAP_*, OAUTH_PROVIDERS, AUTH_ROLES_MAPPING) are Python values, not strings.
    """
    if not path:
        return {}
    if not Path(path).is_file():
        raise FileNotFoundError(f"PORTUS_CONFIG_FILE names no file: {path}")
    defined = runpy.run_path(path, run_name="portus_config")
    return {name: value for name, value in defined.items() if name.isupper()}


def flask_config(config_file: Mapping[str, Any]) -> dict[str, Any]:
    """The Flask settings a standalone app derives from PORTUS_* in the configuration file
    (first) and the environment (used by config.py)."""
    settings = Settings.load(config_file)
    make_data_dir(settings.data_dir)
    return {
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SECRET_KEY": _raw(config_file, "PORTUS_SECRET_KEY", None)
        or persistent_secret(settings.data_dir, "secret_key"),
        **{name: os.environ[name] for name in SETTING_NAMES if os.environ.get(name)},
    }
