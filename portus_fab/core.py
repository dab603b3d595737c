"""The add-on's state for one Flask app: settings, signing key, credential cache, and the one
place that issues registry tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from portus_fab.access.group_teams import GroupTeams, parse_group_teams
from portus_fab.access.policy import INTERNAL_IDENTITY, Policy
from portus_fab.auth.access import DecisionCache
from portus_fab.auth.authenticate import AuthContext
from portus_fab.auth.credentials import CredentialCache
from portus_fab.auth.directory_sign_in import DirectorySignIn
from portus_fab.auth.keys import SigningKey, load_or_generate
from portus_fab.auth.lockout import Lockout
from portus_fab.auth.scopes import parse_scopes
from portus_fab.auth.secrets import SecretHasher
from portus_fab.auth.tokens import IssuedToken, issue_token
from portus_fab.catalog.applier import EventApplier, PublishEnrich
from portus_fab.registry.client import RegistryClient
from portus_fab.settings import Settings

EXTENSION = "portus_fab"


@dataclass
class Portus:
    settings: Settings
    signing_key: SigningKey
    authentication: AuthContext
    decisions: DecisionCache
    event_applier: EventApplier
    group_teams: GroupTeams  # PORTUS_GROUP_TEAMS, parsed once

    @classmethod
    def create(cls, app: Flask, publish_enrich: PublishEnrich) -> Portus:
        settings = Settings.load(app.config)
        key = load_or_generate(
            settings.data_dir,
            settings.token_issuer,
            settings.token_key,
            settings.token_cert,
            settings.token_algorithm,
        )
        cache = CredentialCache(app.config["SECRET_KEY"].encode(), settings.credential_cache_ttl)
        hasher = SecretHasher(settings.credential_hash_key.encode())
        lockout = Lockout.from_settings(
            settings, case_insensitive=app.config.get("AUTH_USERNAME_CI", True)
        )
        group_teams = parse_group_teams(settings.group_teams)
        directory = DirectorySignIn.from_app(
            app,
            timeout=settings.ldap_timeout,
            proof_ttl=settings.credential_cache_ttl,
            group_teams=group_teams,
        )
        authentication = AuthContext.from_app(app, cache, hasher, lockout, directory)
        return cls(
            settings,
            key,
            authentication,
            DecisionCache(),
            EventApplier(app, publish_enrich),
            group_teams,
        )

    @property
    def session(self) -> Session:
        return current_app.appbuilder.session

    @property
    def engine(self) -> Engine:
        return current_app.extensions["sqlalchemy"].engine

    @property
    def admin_role(self) -> str:
        return self.authentication.admin_role

    def registry_client(
        self, *, timeout: float | None = None, deadline: float | None = None
    ) -> RegistryClient:
        """The client portus_fab's own work uses, with tokens issued to its internal identity.
        `timeout` (default PORTUS_REGISTRY_TIMEOUT) bounds each connect and read; `deadline`
        (seconds from now) all of its requests together, for answers someone waits for."""

        def token_for(scopes: list[str]) -> str:
            access = [
                {"type": scope.type, "name": scope.name, "actions": list(scope.actions)}
                for scope in parse_scopes(scopes)
            ]
            return self.issue(INTERNAL_IDENTITY, access).token

        settings = self.settings
        return RegistryClient(
            settings.registry_url,
            token_for,
            timeout=settings.registry_timeout if timeout is None else timeout,
            deadline=deadline,
            verify=settings.registry_ca or True,
        )

    def policy(self) -> Policy:
        return Policy(self.session, delete_by_contributors=self.settings.delete_by_contributors)

    def issue(self, subject: str, access: list[dict[str, Any]]) -> IssuedToken:
        return issue_token(
            self.signing_key,
            issuer=self.settings.token_issuer,
            audience=self.settings.registry_service,
            subject=subject,
            access=access,
            ttl=self.settings.token_ttl,
        )


def portus() -> Portus:
    """The add-on state of the current app."""
    return current_app.extensions[EXTENSION]
