"""Robot account screens: a namespace's owners see and manage its robots, admins all of them.

Which robots and robot grants a user sees, on lists and direct URLs alike, is the policy's
`managed_robots` and `managed_robot_grants` (base filters); every change goes through
portus_fab.auth.robots. A secret exists only in the answer to a create or a rotate (never in
a flash, which the session cookie would carry, never stored): that page says it is shown once.
Disable, enable, rotate and delete are POSTs with the CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, make_response, redirect, url_for
from flask_appbuilder import ModelView, expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, Select2Widget
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portus_fab.access import policy
from portus_fab.auth import robots
from portus_fab.core import portus
from portus_fab.errors import PortusError
from portus_fab.models import Namespace, Robot, RobotGrant, Role
from portus_fab.models.robots import ROBOT_NAME_MAX, SEPARATOR
from portus_fab.models.transaction import transaction
from portus_fab.registry.names import NAMESPACE_MAX
from portus_fab.views.admin import ExactNameField, PolicyFilter
from portus_fab.views.principal import current_principal

ROBOT_ROLE_FIELD = SelectField(
    "Role",
    choices=[(role.value, role.value) for role in robots.ROBOT_ROLES],
    coerce=lambda value: Role(value) if value else None,
    widget=Select2Widget(),
)


def _managed_namespaces() -> Any:
    return policy.managed_namespaces(current_principal())


class RobotForm(FlaskForm):
    namespace = SelectField("Namespace", choices=[], validators=[InputRequired()])
    name = StringField(
        "Name",
        validators=[InputRequired(), Length(max=ROBOT_NAME_MAX)],
        description=f"It signs in as NAMESPACE{SEPARATOR}NAME.",
    )
    access = SelectField(
        "Access to its namespace",
        choices=[("read", "read (pull)"), ("write", "write (pull and push)")],
    )
    expires_days = IntegerField(
        "Expires after (days)",
        validators=[Optional(), NumberRange(1, robots.EXPIRES_DAYS_MAX)],
        description="Leave empty for no expiry.",
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=robots.DESCRIPTION_MAX)],
        widget=BS3TextAreaFieldWidget(),
    )


class ActionForm(FlaskForm):
    """Only the CSRF token: disable, enable, rotate and delete carry nothing else."""


def _secret_page(view: ModelView, created: robots.RobotSecret, what: str) -> Response:
    answer = make_response(
        view.render_template(
            "portus_fab/robot_secret.html",
            full_name=created.robot.full_name,
            secret=created.secret,
            what=what,
            show_url=url_for("RobotView.show", pk=created.robot.id),
        )
    )
    # The page holds a credential: no browser or proxy may keep it (as the token endpoint).
    answer.headers["Cache-Control"] = "no-store"
    answer.headers["Pragma"] = "no-cache"
    return answer


class RobotView(ModelView):
    datamodel = SQLAInterface(Robot)
    list_title = "Robot accounts"
    show_title = "Robot account"
    list_columns = ["full_name", "description", "expires_at", "disabled", "last_used_at"]
    show_columns = [
        "full_name",
        "namespace",
        "description",
        "expires_at",
        "disabled",
        "grants",
        "created_at",
        "created_by",
        "last_used_at",
    ]
    label_columns = {"full_name": "Username", "grants": "Grants"}
    search_columns = ["namespace", "name", "description", "disabled"]
    base_order = ("name", "asc")
    # FAB's generic add, edit and delete are off: creating shows a secret, deleting is a POST.
    base_permissions = [
        "can_list",
        "can_show",
        "can_new",
        "can_rotate",
        "can_disable",
        "can_enable",
        "can_remove",
    ]
    base_filters = [["id", PolicyFilter, lambda: policy.managed_robots(current_principal())]]
    search_form_query_rel_fields = {"namespace": [["id", PolicyFilter, _managed_namespaces]]}
    list_template = "portus_fab/robot_list.html"
    show_template = "portus_fab/robot_show.html"

    def _managed(self, pk: int) -> Robot:
        """The robot, if the signed-in user manages it; 404 as for a robot that does not exist."""
        robot = self.datamodel.get(pk, self._base_filters)
        if robot is None:
            abort(404)
        return robot

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: str) -> str:
        robot = self._managed(int(pk) if pk.isdigit() else -1)
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=self._show(robot.id),
            related_views=self._related_views,
            robot=robot,
            status=robots.status(robot),
            action_form=ActionForm(),
        )

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self) -> str | Response:
        core = portus()
        principal = current_principal()
        form = RobotForm()
        form.namespace.choices = list(
            core.session.scalars(
                select(Namespace.name).where(_managed_namespaces()).order_by(Namespace.name)
            )
        )
        if form.validate_on_submit():
            try:
                with transaction(core.session) as session:
                    created = robots.create_robot(
                        session,
                        core.authentication.hasher,
                        principal,
                        form.namespace.data,
                        form.name.data.strip(),
                        form.access.data,
                        expires_days=form.expires_days.data,
                        description=form.description.data or "",
                    )
                    page = _secret_page(self, created, "created")
                return page
            except PortusError as error:
                form.name.errors = [*form.name.errors, str(error)]
        return self.render_template("portus_fab/robot_new.html", form=form)

    def _act(self, pk: int, act: Any, done: str) -> Response:
        core = portus()
        robot = self._managed(pk)
        if not ActionForm().validate_on_submit():
            abort(400)
        full_name = robot.full_name
        try:
            with transaction(core.session) as session:
                act(session, robot)
        except PortusError as error:
            flash(str(error), "danger")
            return redirect(url_for("RobotView.show", pk=pk))
        flash(f"Robot {full_name} {done}", "success")
        if done == "deleted":
            return redirect(url_for("RobotView.list"))
        return redirect(url_for("RobotView.show", pk=pk))

    @expose("/rotate/<int:pk>", methods=["POST"])
    @has_access
    def rotate(self, pk: int) -> Response:
        core = portus()
        robot = self._managed(pk)
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            with transaction(core.session) as session:
                rotated = robots.rotate_secret(
                    session, core.authentication.hasher, current_principal(), robot
                )
                page = _secret_page(self, rotated, "rotated")
            return page
        except PortusError as error:
            flash(str(error), "danger")
            return redirect(url_for("RobotView.show", pk=pk))

    @expose("/disable/<int:pk>", methods=["POST"])
    @has_access
    def disable(self, pk: int) -> Response:
        principal = current_principal()
        return self._act(pk, lambda s, r: robots.set_disabled(s, principal, r, True), "disabled")

    @expose("/enable/<int:pk>", methods=["POST"])
    @has_access
    def enable(self, pk: int) -> Response:
        principal = current_principal()
        return self._act(pk, lambda s, r: robots.set_disabled(s, principal, r, False), "enabled")

    @expose("/remove/<int:pk>", methods=["POST"])
    @has_access
    def remove(self, pk: int) -> Response:
        principal = current_principal()
        return self._act(pk, lambda s, r: robots.delete_robot(s, principal, r), "deleted")


class RobotGrantView(ModelView):
    """Robot grants: given by a namespace's owners (on their namespace) to any robot they name;
    a robot's own owners see where it reaches."""

    datamodel = SQLAInterface(RobotGrant)
    list_title = "Robot grants"
    list_columns = ["namespace", "robot", "role"]
    add_columns = ["namespace", "robot", "role"]
    edit_columns = ["role"]
    show_columns = ["namespace", "robot", "role"]
    search_columns = ["namespace", "role"]
    add_form_extra_fields = {
        "role": ROBOT_ROLE_FIELD,
        "robot": ExactNameField(
            "Robot",
            robots.find_robot,
            lambda robot: robot.full_name,
            NAMESPACE_MAX + len(SEPARATOR) + ROBOT_NAME_MAX,
            description=f"The robot's full name, NAMESPACE{SEPARATOR}NAME.",
            validators=[InputRequired()],
        ),
    }
    edit_form_extra_fields = {"role": ROBOT_ROLE_FIELD}
    search_form_extra_fields = {"role": ROBOT_ROLE_FIELD}
    base_filters = [["id", PolicyFilter, lambda: policy.managed_robot_grants(current_principal())]]
    add_form_query_rel_fields = search_form_query_rel_fields = {
        "namespace": [["id", PolicyFilter, _managed_namespaces]]
    }

    def _check(self, item: RobotGrant) -> None:
        robots.check_robot_grant(self.datamodel.session, current_principal(), item)

    pre_add = pre_update = _check

    def pre_delete(self, item: RobotGrant) -> None:
        robots.check_manages(self.datamodel.session, current_principal(), item.namespace)


def register_robot_views(appbuilder: Any) -> None:
    category = "Registry"
    appbuilder.add_view(RobotView, "Robot accounts", icon="fa-android", category=category)
    appbuilder.add_view(RobotGrantView, "Robot grants", icon="fa-key", category=category)
