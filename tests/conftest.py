"""Fixtures shared by every test: an app per test on its own temporary database, users, clients.

Building a FAB app from nothing (tables, permissions, a signing key) takes seconds, so the first
app of the session is built once as a template; each test then gets a copy of its data dir and a
fresh app over it, with no state shared between tests.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

# config.py reads the environment when first imported: a throwaway dir, never ./instance.
os.environ.setdefault("PORTUS_DATA_DIR", tempfile.mkdtemp(prefix="portus-test-env-"))

from run import create_app  # noqa: E402

# Tests do not need scrypt's cost; tests of the credential cache measure call counts, not time.
FAST_HASH = "pbkdf2:sha256:1000"
USER_ROLE = "User"


def app_config(data_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'portus.db'}",
        "PORTUS_DATA_DIR": str(data_dir),
        "PORTUS_WEBHOOK_SECRET": "test-webhook-secret",
        "AUTH_USER_REGISTRATION_ROLE": USER_ROLE,
        "PORTUS_REGISTRY_URL": "http://127.0.0.1:5000",
        "FAB_PASSWORD_HASH_METHOD": FAST_HASH,
        "PORTUS_BROKER_URL": "memory://",
        "WTF_CSRF_ENABLED": False,
        **overrides,
    }


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template")
    app = create_app(app_config(path))
    with app.app_context():
        sm = app.appbuilder.sm
        if sm.find_role(USER_ROLE) is None:
            sm.add_role(USER_ROLE)
        app.appbuilder.session.remove()
    return path


class IsolatedClient(FlaskClient):
    """Each request runs with its own app context (its own `g`, login state and database
    session), as in production, even while the test holds an app context for its own queries."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return contextvars.Context().run(super().open, *args, **kwargs)


def make_app(template_dir: Path, data_dir: Path, **overrides: Any) -> Flask:
    shutil.copytree(template_dir, data_dir, dirs_exist_ok=True)
    app = create_app(app_config(data_dir, FAB_UPDATE_PERMS=False, **overrides))
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture
def app(template_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(template_dir, tmp_path / "data")
    with app.app_context():
        yield app
        app.appbuilder.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # noqa: ANN201 - FlaskCliRunner
    return app.test_cli_runner()


def add_user(
    app: Flask,
    username: str,
    password: str = "secret",
    *,
    admin: bool = False,
    active: bool = True,
) -> Any:
    sm = app.appbuilder.sm
    role = sm.find_role(sm.auth_role_admin if admin else USER_ROLE)
    user = sm.add_user(username, username, "Test", f"{username}@example.test", role, password)
    assert user, f"could not create user {username}"
    if not active:
        user.active = False
        app.appbuilder.session.commit()
    return user


# -- a real LDAP directory (tests/support/slapd.py): one slapd for the session --------------


@pytest.fixture(scope="session")
def slapd() -> Iterator[Any]:
    """The session's OpenLDAP directory. Tests that change it use `ldap_directory` instead."""
    from tests.support.slapd import running_directory  # python-ldap: only LDAP tests need it

    yield from running_directory()


@pytest.fixture
def ldap_directory(slapd: Any) -> Iterator[Any]:
    """The session's directory, running again with its seed content after the test (whatever
    the test stopped, added, removed or changed)."""
    yield slapd
    slapd.restore()


@pytest.fixture
def ldap_config(slapd: Any) -> dict[str, Any]:
    """FAB overrides for an app that signs people in against the session's directory
    (`make_app(template_dir, tmp_path / "data", **ldap_config)`)."""
    from tests.support.slapd import ldap_settings

    return ldap_settings(slapd)


# -- a real OpenID Connect provider (tests/support/oidc.py): one for the session ---------------


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Any]:
    """The session's OpenID Connect provider. Each test gives its people their own `sub`."""
    from tests.support.oidc import running_provider

    yield from running_provider()


@pytest.fixture(scope="session")
def oauth_template_dir(
    template_dir: Path, tmp_path_factory: pytest.TempPathFactory, oidc_provider: Any
) -> Path:
    """The template with FAB's AUTH_OAUTH views' permissions (`oauth_app(oauth_template_dir,
    tmp_path / "data", oidc_provider)`)."""
    from tests.support.oidc import oauth_template

    return oauth_template(template_dir, tmp_path_factory.mktemp("oauth") / "data", oidc_provider)
