"""OpenID Connect sign-in through FAB's AUTH_OAUTH, and the `docker login` help of users who have
no registry password.

FAB's `get_oauth_user_info` knows a few providers by name only. A generic getter, registered the
FAB way (`sm.oauth_user_info_getter`), answers for every provider FAB has no built-in for: the
claims of the ID token Authlib has verified, completed by the provider's userinfo endpoint,
become the user information (portus_fab.auth.oidc). After FAB's `auth_user_oauth` finds or
creates the user, its team memberships from the provider follow the groups (the `role_keys`
AUTH_ROLES_MAPPING maps to roles), in this request's transaction.

A user signed in by a provider never learns the random password FAB gave them: their profile page
and the access tokens page show how to log in with a personal access token instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request, url_for
from flask_appbuilder import AppBuilder
from flask_appbuilder.const import AUTH_OAUTH
from flask_appbuilder.exceptions import OAuthProviderUnknown
from flask_appbuilder.security.manager import BaseSecurityManager
from sqlalchemy.exc import SQLAlchemyError

from portus_fab.access.group_teams import sync_group_teams
from portus_fab.audit.origin import Origin, acting, current_origin
from portus_fab.auth import oidc
from portus_fab.core import portus
from portus_fab.errors import PortusError
from portus_fab.models.transaction import transaction

log = logging.getLogger(__name__)

# The `source` of the team memberships this sign-in syncs (TeamMember.source).
SOURCE = "oidc"
USER_INFO_TEMPLATE = "portus_fab/user_info.html"

UserInfoGetter = Callable[[str, dict[str, Any]], dict[str, Any]]


def install(appbuilder: AppBuilder, app: Flask) -> None:
    sm = appbuilder.sm
    if sm.auth_type == AUTH_OAUTH:
        sm.oauth_user_info_getter(_generic_user_info(sm.oauth_user_info))
        sm.auth_user_oauth = _syncing_teams(sm.auth_user_oauth)
    if oidc.has_registry_password(sm.auth_type) or sm.user_view is None:
        return
    # FAB's profile page (`userinfo`) renders the user view's show template: the same page
    # with the help below FAB's details. Admins' pages of other users show no help.
    sm.user_view.show_template = USER_INFO_TEMPLATE
    profile = f"{sm.user_view.endpoint}.userinfo"

    @app.context_processor
    def profile_docker_login() -> dict[str, DockerLogin | None]:
        return {"docker_login": docker_login() if request.endpoint == profile else None}


def _generic_user_info(builtin: UserInfoGetter) -> Callable[..., dict[str, Any]]:
    def user_info(
        sm: BaseSecurityManager, provider: str, response: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return builtin(provider, response)
        except OAuthProviderUnknown:
            pass  # raised before FAB asks any provider anything
        remote = sm.oauth_remotes[provider]
        fetched = None
        if remote.load_server_metadata().get("userinfo_endpoint"):
            fetched = remote.userinfo(token=response)
        # `userinfo` in the token answer is Authlib's: the ID token's claims, signature, issuer,
        # audience and nonce verified.
        claims = oidc.merged_claims(response.get("userinfo"), fetched)
        return dict(oidc.user_info(claims, portus().settings.oidc_groups_claim))

    return user_info


def _syncing_teams(authenticate: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    def signed_in(userinfo: dict[str, Any]) -> Any:
        # What the sign-in records (the personal namespace, team memberships) the user did, by
        # signing in: before it, the request's origin names no one. FAB's name for the user.
        username = userinfo.get("username") or userinfo.get("email") or ""
        with acting(Origin(username, current_origin().address)):
            user = authenticate(userinfo)
            if user is None:
                return None
            core = portus()
            groups = userinfo.get("role_keys") or []
            try:
                with transaction(core.session) as session:
                    sync_group_teams(session, user, groups, core.group_teams, SOURCE)
            except (SQLAlchemyError, PortusError):
                # Signed in with stale teams, a user could keep a team they left: refused.
                log.exception("could not sync the teams of %s from their groups", user.username)
                return None
            return user

    return signed_in


@dataclass(frozen=True, slots=True)
class DockerLogin:
    """How the signed-in user logs a registry client in with a personal access token."""

    command: str
    host: str
    username: str
    tokens_url: str


def docker_login() -> DockerLogin | None:
    """The help for the signed-in user when they have no registry password, else None."""
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False) or user.is_anonymous:
        return None
    if oidc.has_registry_password(current_app.appbuilder.sm.auth_type):
        return None
    host = portus().settings.registry_host
    return DockerLogin(
        command=oidc.docker_login_command(host, user.username),
        host=host,
        username=user.username,
        tokens_url=url_for("AccessTokenView.tokens"),
    )
