"""A real OpenID Connect provider for the tests: `oidc-provider-mock` (PyPI), an Authlib
authorization server with discovery, signed ID tokens, a userinfo endpoint and a consent form,
served on a free loopback port from a thread.

Any client id and secret are accepted (no registration). A person is a `sub` with claims,
set with `PUT /users/{sub}` (`set_user`); the consent form signs in whichever `sub` is typed
into it (`input[name=sub]`, button "Authorize"). Nonces are required, as a careful provider
would: Authlib sends one with every OpenID request.

The portus_fab side: `oauth_config` gives the FAB settings of an app signing in through it, and
`sign_in` walks FAB's OAuth routes and the provider's form with a Flask test client.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder.const import AUTH_OAUTH

from run import create_app
from tests.conftest import IsolatedClient, app_config
from tests.support.served import ThreadedServer
from tests.support.wait import free_port

# Authlib warns, at import, of its own modules the provider uses, under an "always" filter it
# installs when first imported: ignore them after that filter, while the provider is imported.
with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401 - its filter first, so that ours comes before it

    warnings.simplefilter("ignore")
    import oidc_provider_mock

PROVIDER = "corp"
CLIENT_ID = "portus-fab"
CLIENT_SECRET = "portus-fab-client-secret"
# A role AUTH_ROLES_MAPPING gives a group; created by `oauth_template`.
MAPPED_ROLE = "Auditor"
ROLES_MAPPING = {"auditors": [MAPPED_ROLE]}
GROUP_TEAMS = {"devs": ["developers", "contributor"], "leads": ["developers", "owner"]}

# FAB's /login/<provider> signs its OAuth `state` with a 30-character random key, which PyJWT
# warns is short; FAB's, not ours (a fresh key per sign-in, checked only by the same session).
FAB_STATE_KEY_WARNING = pytest.mark.filterwarnings(
    "ignore:The HMAC key is 30 bytes long:jwt.warnings.InsecureKeyLengthWarning"
)


class OidcProvider(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(oidc_provider_mock.app(require_nonce=True), free_port())

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """The claims the provider gives `sub` from now on (ID token and userinfo alike)."""
        answer = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text

    def fab_provider(self) -> dict[str, Any]:
        """The OAUTH_PROVIDERS entry of this provider, as the README shows it."""
        return {
            "name": PROVIDER,
            "icon": "fa-openid",
            "token_key": "access_token",
            "remote_app": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "server_metadata_url": self.metadata_url,
                "client_kwargs": {"scope": "openid email profile groups"},
            },
        }

    def consent(self, authorize_url: str, sub: str) -> str:
        """Sign `sub` in on the provider's form; the redirect back to the app's callback."""
        answer = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


def running_provider() -> Iterator[OidcProvider]:
    """A started provider, stopped afterwards (the body of a pytest fixture)."""
    with OidcProvider() as provider:
        yield provider


def oauth_config(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """FAB and portus_fab settings of an app whose people sign in through `provider`."""
    return {
        "AUTH_TYPE": AUTH_OAUTH,
        "OAUTH_PROVIDERS": [provider.fab_provider()],
        "AUTH_USER_REGISTRATION": True,
        "AUTH_ROLES_MAPPING": ROLES_MAPPING,
        "AUTH_ROLES_SYNC_AT_LOGIN": True,
        "PORTUS_GROUP_TEAMS": GROUP_TEAMS,
        **overrides,
    }


def oauth_template(template_dir: Path, data_dir: Path, provider: OidcProvider) -> Path:
    """A copy of the test template whose database also holds FAB's permissions for the views it
    registers under AUTH_OAUTH (the template was built under AUTH_DB) and the mapped role, so
    that apps made from it can run with FAB_UPDATE_PERMS off like every other test app."""
    shutil.copytree(template_dir, data_dir)
    app = _create(data_dir, FAB_UPDATE_PERMS=True, **oauth_config(provider))
    with app.app_context():
        sm = app.appbuilder.sm
        if sm.find_role(MAPPED_ROLE) is None:
            sm.add_role(MAPPED_ROLE)
        app.appbuilder.session.remove()
    return data_dir


def oauth_app(template: Path, data_dir: Path, provider: OidcProvider, **overrides: Any) -> Flask:
    """An app over a copy of `oauth_template`'s data, signing in through `provider`."""
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    app = _create(data_dir, FAB_UPDATE_PERMS=False, **oauth_config(provider, **overrides))
    app.test_client_class = IsolatedClient
    return app


def _create(data_dir: Path, **overrides: Any) -> Flask:
    return create_app(app_config(data_dir, **overrides))


def sign_in(client: FlaskClient, provider: OidcProvider, sub: str) -> Any:
    """Sign in as `sub` the way a browser does: FAB's /login/<provider> sends it to the
    provider, whose form sends it back to FAB's /oauth-authorized/<provider>. FAB's answer."""
    start = client.get(f"/login/{PROVIDER}")
    assert start.status_code == 302, start.get_data(as_text=True)
    callback = urlsplit(provider.consent(start.headers["Location"], sub))
    assert callback.path == f"/oauth-authorized/{PROVIDER}", callback
    return client.get(f"{callback.path}?{callback.query}")
