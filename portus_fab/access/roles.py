"""Which screens each FAB role gets. FAB's permission system then decides menus and routes; the
policy decides rows. Admins hold every permission already (FAB's admin role)."""

from __future__ import annotations

from flask_appbuilder.security.sqla.manager import SecurityManager

from portus_fab.settings import Settings

BROWSE = [
    ("can_explore", "BrowseView"),
    ("can_repository", "BrowseView"),
    ("can_tag", "BrowseView"),
    ("menu_access", "Explore"),
]

# FAB's own-account screens (AUTH_DB): see one's user info, change one's password and name.
# Signed in by a provider (AUTH_OAUTH), the user info page alone: it shows the `docker login`
# help of users who have no registry password (views/oidc.py).
# FAB's `userinfo`, `resetmypassword` and `userinfoedit` act on the signed-in user only, whatever
# the id in the URL; no permission here lists or shows other users.
OWN_ACCOUNT = [
    ("can_userinfo", "UserDBModelView"),
    ("can_userinfo", "UserOAuthModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("userinfoedit", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_this_form_get", "UserInfoEditView"),
    ("can_this_form_post", "UserInfoEditView"),
]

# Everyone logged in: browse; manage what they own (rows filtered by the policy); delete
# through the browse pages (allowed per repository by the policy).
USER = [
    *BROWSE,
    *OWN_ACCOUNT,
    ("can_delete", "BrowseView"),
    ("can_list", "NamespaceView"),
    ("can_show", "NamespaceView"),
    ("can_edit", "NamespaceView"),
    ("menu_access", "Namespaces"),
    ("can_list", "TeamView"),
    ("can_show", "TeamView"),
    ("menu_access", "Teams"),
    *[
        (perm, "TeamMemberView")
        for perm in ("can_list", "can_show", "can_add", "can_edit", "can_delete")
    ],
    ("menu_access", "Team members"),
    *[
        (perm, "GrantView")
        for perm in ("can_list", "can_show", "can_add", "can_edit", "can_delete")
    ],
    ("menu_access", "Grants"),
    # Their own access tokens (rows: the policy's manages_credentials_of).
    *[(perm, "AccessTokenView") for perm in ("can_tokens", "can_create", "can_revoke")],
    ("menu_access", "Access tokens"),
    # Their own refresh tokens (rows: the policy's manages_credentials_of).
    ("can_tokens", "RefreshTokenView"),
    ("can_revoke", "RefreshTokenView"),
    ("menu_access", "Refresh tokens"),
    # Robot accounts of the namespaces they own, and robot grants there (rows: the policy).
    *[
        (perm, "RobotView")
        for perm in (
            "can_list",
            "can_show",
            "can_new",
            "can_rotate",
            "can_disable",
            "can_enable",
            "can_remove",
        )
    ],
    ("menu_access", "Robot accounts"),
    *[
        (perm, "RobotGrantView")
        for perm in ("can_list", "can_show", "can_add", "can_edit", "can_delete")
    ],
    ("menu_access", "Robot grants"),
    ("can_list", "RepositoryView"),
    ("can_show", "RepositoryView"),
    ("can_edit", "RepositoryView"),
    ("menu_access", "Repositories"),
    ("can_list", "TagView"),
    ("can_show", "TagView"),
    ("menu_access", "Tags"),
    ("menu_access", "Registry"),
]


def _grant(
    sm: SecurityManager, role_name: str, permissions: list[tuple[str, str]], *, keep: bool = True
) -> None:
    role = sm.find_role(role_name) or sm.add_role(role_name)
    for permission, view in permissions:
        permission_view = sm.find_permission_view_menu(permission, view)
        if permission_view is None:
            continue  # FAB_UPDATE_PERMS is off and the permission was never created
        present = permission_view in role.permissions
        if keep and not present:
            sm.add_permission_role(role, permission_view)
        elif not keep and present:
            sm.del_permission_role(role, permission_view)


def sync_roles(sm: SecurityManager, settings: Settings) -> None:
    _grant(sm, settings.user_role, USER)
    # FAB gives anonymous visitors the Public role's permissions.
    _grant(sm, sm.auth_role_public, BROWSE, keep=settings.anonymous_browse)
