"""FAB's generated CRUD screens for access control and the registry's contents.

Which screens and routes exist per role is FAB's permission system (see roles.py); which ROWS a
user sees, on lists and on direct URLs alike, is the policy, through `PolicyFilter` base filters.
Rule checks live in portus_fab.access.management; the hooks here only call them. FAB shows
the message of whatever a `pre_*` hook raises as a flash and stops the change: that is where
portus_fab.errors become this surface's answer (and `ExactNameField` makes them field errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask_appbuilder import ModelView
from flask_appbuilder.fieldwidgets import (
    BS3TextAreaFieldWidget,
    BS3TextFieldWidget,
    Select2Widget,
)
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.registerviews import RegisterUserDBView
from flask_appbuilder.security.sqla.models import User
from flask_appbuilder.security.views import UserInfoEditView
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.core import UnboundField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from portus_fab.access import management, policy
from portus_fab.audit.origin import install_request_origin
from portus_fab.errors import PortusError
from portus_fab.models import (
    GLOBAL_NAMESPACE,
    Activity,
    Grant,
    Namespace,
    NamespaceKind,
    RegistryEventRecord,
    Repository,
    Role,
    Tag,
    Team,
    TeamMember,
    Visibility,
)
from portus_fab.views.parameters import install_parameter_checks
from portus_fab.views.principal import current_principal, request_address, request_origin


class PolicyFilter(BaseFilter):
    """A base filter whose value is a function returning the policy's SQL condition."""

    name = "allowed by the portus_fab policy"
    arg_name = "portus_policy"

    def apply(self, query: Any, condition: Callable[[], ColumnElement[bool]]) -> Any:
        return query.filter(condition())


def _visible_namespace_ids() -> Any:
    return policy.visible_namespace_ids(current_principal())


def _managed_namespace_ids() -> Any:
    return select(Namespace.id).where(policy.managed_namespaces(current_principal()))


def _managed_team_ids() -> Any:
    return select(Team.id).where(policy.managed_teams(current_principal()))


def _raise_as_form_error(check: Callable[[str], str | None]) -> Callable[[Any, Any], None]:
    def validator(_form: Any, field: Any) -> None:
        problem = check(field.data)
        if problem:
            raise ValidationError(problem)

    return validator


class OwnValidatorsMixin:
    """FAB appends its Unique validator to the lists in `validators_columns`: give every view
    instance (one per app) its own lists, so they do not grow with each app built."""

    validators_columns: dict[str, list[Any]]

    def __init__(self, **kwargs: Any) -> None:
        self.validators_columns = {
            column: list(validators) for column, validators in type(self).validators_columns.items()
        }
        super().__init__(**kwargs)


def _choice(enum_class: type[Any], label: str) -> Any:
    """A select of an enum's values. FAB's own EnumField expects member NAMES in the column
    type, while portus_fab stores the lowercase values."""
    return SelectField(
        label,
        choices=[(member.value, member.value) for member in enum_class],
        coerce=lambda value: enum_class(value) if value else None,
        widget=Select2Widget(),
    )


VISIBILITY_FIELD = {"visibility": _choice(Visibility, "Visibility")}
DESCRIPTION_LIMIT = _raise_as_form_error(management.validate_description)
ROLE_FIELD = {"role": _choice(Role, "Role")}


class ExactNameField(StringField):
    """A related row given by its exact name, typed rather than picked from a list: a select
    would show everyone who may open the form every user's name and full name, or every team.
    The name is resolved when the form is submitted; an unknown one is a form error."""

    def __init__(
        self,
        label: str,
        find: Callable[[Session, str], Any],
        name_of: Callable[[Any], str],
        max_length: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(label, widget=BS3TextFieldWidget(), **kwargs)
        self.find = find
        self.name_of = name_of
        self.max_length = max_length
        self.typed: str | None = None

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.typed = str(valuelist[0]).strip() if valuelist else ""
        self.data = None
        if len(self.typed) > self.max_length:
            # No row has a longer name; nor is a long text looked up, or repeated in the error.
            self.typed = self.typed[: self.max_length]
            raise ValueError(
                f"a {self.label.text.lower()} name has at most {self.max_length} characters"
            )
        if self.typed:
            try:
                self.data = self.find(current_app.appbuilder.session, self.typed)
            except PortusError as error:
                raise ValueError(str(error)) from None  # WTForms shows it as the field's error

    def _value(self) -> str:
        if self.typed is not None:
            return self.typed
        return self.name_of(self.data) if self.data is not None else ""


def _username_field(description: str, *validators: Any) -> ExactNameField:
    return ExactNameField(
        "User",
        management.find_user,
        lambda user: user.username,
        User.__table__.c.username.type.length,
        description=description,
        validators=list(validators),
    )


def _granted_user_ids() -> Any:
    return select(Grant.user_id).where(Grant.namespace_id.in_(_managed_namespace_ids()))


def _granted_team_ids() -> Any:
    return select(Grant.team_id).where(Grant.namespace_id.in_(_managed_namespace_ids()))


def _member_user_ids() -> Any:
    return select(TeamMember.user_id).where(TeamMember.team_id.in_(_managed_team_ids()))


class NamespaceView(OwnValidatorsMixin, ModelView):
    datamodel = SQLAInterface(Namespace)
    list_title = "Namespaces"
    list_columns = ["name", "kind", "visibility", "description", "created_at"]
    formatters_columns = {
        "name": lambda name: "(global)" if name == GLOBAL_NAMESPACE else name,
        "created_at": lambda moment: f"{moment:%Y-%m-%d %H:%M}",
    }
    search_columns = ["name", "kind", "visibility", "description"]
    show_columns = ["name", "kind", "visibility", "description", "user", "created_at"]
    add_columns = ["name", "visibility", "description"]
    edit_columns = ["visibility", "description"]
    order_columns = ["name", "kind", "visibility", "created_at"]
    base_order = ("name", "asc")
    base_filters = [["id", PolicyFilter, lambda: policy.managed_namespaces(current_principal())]]
    validators_columns = {"name": [_raise_as_form_error(management.validate_namespace_name)]}
    add_form_extra_fields = edit_form_extra_fields = {
        **VISIBILITY_FIELD,
        # Optional, though the column is NOT NULL: an empty description is stored as "".
        "description": TextAreaField(
            "Description",
            validators=[Optional(), DESCRIPTION_LIMIT],
            filters=[lambda text: text or ""],
            widget=BS3TextAreaFieldWidget(),
        ),
    }
    search_form_extra_fields = {**VISIBILITY_FIELD, "kind": _choice(NamespaceKind, "Kind")}

    def pre_add(self, item: Namespace) -> None:
        item.kind = NamespaceKind.TEAM
        management.check(management.validate_visibility(item.kind, item.visibility))

    def pre_update(self, item: Namespace) -> None:
        management.check(management.validate_visibility(item.kind, item.visibility))

    def pre_delete(self, item: Namespace) -> None:
        management.check_deletable(self.datamodel.session, item)


class GrantView(ModelView):
    datamodel = SQLAInterface(Grant)
    list_title = "Grants"
    list_columns = ["namespace", "user", "team", "role"]
    add_columns = edit_columns = ["namespace", "user", "team", "role"]
    search_columns = ["namespace", "user", "team", "role"]
    add_form_extra_fields = edit_form_extra_fields = {
        **ROLE_FIELD,
        "user": _username_field("The exact username; leave empty for a team grant."),
        "team": ExactNameField(
            "Team",
            management.find_team,
            lambda team: team.name,
            Team.__table__.c.name.type.length,
            description="The exact team name; leave empty for a user grant.",
        ),
    }
    search_form_extra_fields = ROLE_FIELD
    base_filters = [
        ["namespace_id", PolicyFilter, lambda: Grant.namespace_id.in_(_managed_namespace_ids())]
    ]
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "namespace": [["id", PolicyFilter, lambda: policy.managed_namespaces(current_principal())]]
    }
    # Searching offers only the users and teams of the grants the list shows.
    search_form_query_rel_fields = {
        **add_form_query_rel_fields,
        "user": [["id", PolicyFilter, lambda: User.id.in_(_granted_user_ids())]],
        "team": [["id", PolicyFilter, lambda: Team.id.in_(_granted_team_ids())]],
    }

    def _validate(self, item: Grant) -> None:
        management.check_new_grant(
            self.datamodel.session,
            item.namespace,
            user=item.user,
            team=item.team,
            other_than=item.id,
        )

    pre_add = pre_update = _validate


class TeamMemberView(ModelView):
    datamodel = SQLAInterface(TeamMember)
    list_title = "Team members"
    # A synced membership says where it comes from, and is changed there (check_hand_edit).
    list_columns = ["team", "user", "role", "source"]
    label_columns = {"source": "Synced from"}
    add_columns = edit_columns = ["team", "user", "role"]
    search_columns = ["team", "user", "role"]
    add_form_extra_fields = edit_form_extra_fields = {
        **ROLE_FIELD,
        "user": _username_field("The exact username of the new member.", InputRequired()),
    }
    search_form_extra_fields = ROLE_FIELD
    base_filters = [["team_id", PolicyFilter, lambda: TeamMember.team_id.in_(_managed_team_ids())]]
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "team": [["id", PolicyFilter, lambda: policy.managed_teams(current_principal())]]
    }
    # Searching offers only the members of the teams the list shows.
    search_form_query_rel_fields = {
        **add_form_query_rel_fields,
        "user": [["id", PolicyFilter, lambda: User.id.in_(_member_user_ids())]],
    }

    def pre_add(self, item: TeamMember) -> None:
        management.check_new_member(self.datamodel.session, item.team, item.user)

    def pre_update(self, item: TeamMember) -> None:
        management.check_member_edit(self.datamodel.session, item)

    def pre_delete(self, item: TeamMember) -> None:
        management.check_removal(self.datamodel.session, item)


class TeamView(OwnValidatorsMixin, ModelView):
    datamodel = SQLAInterface(Team)
    list_title = "Teams"
    list_columns = ["name", "description", "created_at"]
    add_columns = ["name", "description"]
    edit_columns = ["description"]
    search_columns = ["name", "description"]
    base_order = ("name", "asc")
    base_filters = [["id", PolicyFilter, lambda: policy.managed_teams(current_principal())]]
    # A duplicate name is caught by FAB's own Unique validator on this unique column.
    validators_columns = {
        "name": [_raise_as_form_error(management.validate_team_name)],
        "description": [DESCRIPTION_LIMIT],
    }
    related_views = [TeamMemberView]


def _visible_repositories() -> ColumnElement[bool]:
    return Repository.namespace_id.in_(_visible_namespace_ids())


class RepositoryView(OwnValidatorsMixin, ModelView):
    """Read-only: the registry is the source of truth. Deleting goes through the browse pages,
    which delete in the registry itself."""

    datamodel = SQLAInterface(Repository)
    list_title = "Repositories"
    list_columns = ["name", "namespace", "last_pushed_at", "pull_count", "last_pulled_at"]
    search_columns = ["name", "namespace", "last_pushed_at"]
    show_columns = [
        "name",
        "namespace",
        "description",
        "created_at",
        "last_pushed_at",
        "pull_count",
        "last_pulled_at",
    ]
    edit_columns = ["description"]
    base_order = ("name", "asc")
    base_permissions = ["can_list", "can_show", "can_edit"]
    base_filters = [["id", PolicyFilter, _visible_repositories]]
    validators_columns = {"description": [DESCRIPTION_LIMIT]}
    # The search form's choices are rows too: no hidden namespace names.
    search_form_query_rel_fields = {
        "namespace": [
            ["id", PolicyFilter, lambda: policy.Policy.visible_namespaces(current_principal())]
        ]
    }

    def pre_update(self, item: Repository) -> None:
        management.check_edits_repository(self.datamodel.session, current_principal(), item)


class TagView(ModelView):
    datamodel = SQLAInterface(Tag)
    list_title = "Tags"
    list_columns = [
        "repository",
        "name",
        "digest",
        "size",
        "platforms",
        "pushed_by",
        "pushed_at",
        "pull_count",
    ]
    search_columns = ["repository", "name", "digest", "pushed_by", "pushed_at"]
    show_columns = [
        "repository",
        "name",
        "digest",
        "media_type",
        "size",
        "platforms",
        "created",
        "labels",
        "pushed_by",
        "pushed_at",
        "pull_count",
        "last_pulled_at",
        "enriched_at",
        "enrich_error",
    ]
    base_order = ("pushed_at", "desc")
    base_permissions = ["can_list", "can_show"]
    base_filters = [
        [
            "repository_id",
            PolicyFilter,
            lambda: Tag.repository_id.in_(select(Repository.id).where(_visible_repositories())),
        ]
    ]
    # The search form's choices are rows too: no hidden repository names.
    search_form_query_rel_fields = {"repository": [["id", PolicyFilter, _visible_repositories]]}


class RegistryEventView(ModelView):
    datamodel = SQLAInterface(RegistryEventRecord)
    list_title = "Registry events"
    list_columns = ["received_at", "status", "action", "repository", "tag", "actor", "reason"]
    search_columns = ["status", "action", "repository", "actor", "received_at", "event_id"]
    show_columns = [
        "event_id",
        "received_at",
        "occurred_at",
        "status",
        "reason",
        "action",
        "repository",
        "tag",
        "digest",
        "media_type",
        "actor",
        "raw",
    ]
    base_order = ("received_at", "desc")
    base_permissions = ["can_list", "can_show"]


class ActivityView(ModelView):
    datamodel = SQLAInterface(Activity)
    list_title = "Activity"
    list_columns = ["at", "kind", "actor", "target_name", "digest", "previous_digest"]
    search_columns = ["kind", "actor", "target_type", "target_name", "repository", "tag", "at"]
    label_columns = {"target_name": "Target", "target_type": "Target type"}
    show_columns = [
        "at",
        "kind",
        "actor",
        "address",
        "target_type",
        "target_name",
        "details",
        "repository",
        "tag",
        "digest",
        "previous_digest",
        "detail",
    ]
    base_order = ("at", "desc")
    base_permissions = ["can_list", "can_show"]


# The user's own texts in FAB's forms for editing one's details and for self-registration.
USER_TEXT_COLUMNS = ("username", "first_name", "last_name", "email")


def _with_column_lengths(form: type[Any]) -> type[Any]:
    """The form with each user text field limited to its column's length: FAB sets none on
    these forms, and only PostgreSQL enforces the columns' - with a 500."""
    fields = {}
    for name in USER_TEXT_COLUMNS:
        unbound = getattr(form, name, None)
        if isinstance(unbound, UnboundField):
            limit = Length(max=User.__table__.c[name].type.length)
            validators = [*unbound.kwargs.get("validators", []), limit]
            fields[name] = unbound.field_class(
                *unbound.args, **{**unbound.kwargs, "validators": validators}
            )
    return type(form.__name__, (form,), fields)


def limit_user_forms(appbuilder: Any) -> None:
    """FAB registers its security views before the add-ons: they exist here."""
    for view in appbuilder.baseviews:
        if isinstance(view, UserInfoEditView | RegisterUserDBView):
            view.form = _with_column_lengths(view.form)


def register_admin_views(appbuilder: Any) -> None:
    category = "Registry"
    appbuilder.add_view(NamespaceView, "Namespaces", icon="fa-folder", category=category)
    appbuilder.add_view(TeamView, "Teams", icon="fa-users", category=category)
    appbuilder.add_view(TeamMemberView, "Team members", icon="fa-user", category=category)
    appbuilder.add_view(GrantView, "Grants", icon="fa-key", category=category)
    appbuilder.add_view(RepositoryView, "Repositories", icon="fa-archive", category=category)
    appbuilder.add_view(TagView, "Tags", icon="fa-tag", category=category)
    appbuilder.add_view(ActivityView, "Activity", icon="fa-history", category=category)
    appbuilder.add_view(RegistryEventView, "Registry events", icon="fa-bell", category=category)
    limit_user_forms(appbuilder)
    # For FAB's security views and APIs too: they parse their parameters the same way.
    install_parameter_checks(current_app._get_current_object(), appbuilder)
    # Changes made through any screen are recorded as the logged-in user's, from their address.
    install_request_origin(request_origin, request_address)
