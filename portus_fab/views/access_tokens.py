"""Each user's personal access tokens: create one (its secret shown once, with the `docker
login` command), list them with their level, namespaces, expiry and last use, revoke one.
Admins see everyone's; which rows anyone sees is the policy's (`manages_credentials_of`), on
the list and the revoke alike. New tokens are always the signed-in user's own."""

from __future__ import annotations

import re

from flask import flash, g, redirect, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional

from portus_fab.auth import access_tokens
from portus_fab.core import portus
from portus_fab.errors import PortusError
from portus_fab.models import AccessLevel
from portus_fab.models.namespaces import utcnow
from portus_fab.models.tokens import TOKEN_NAME_MAX
from portus_fab.models.transaction import transaction
from portus_fab.views.oidc import docker_login
from portus_fab.views.principal import current_principal

LEVELS = [
    (AccessLevel.READ.value, "read: pull"),
    (AccessLevel.WRITE.value, "write: pull, push"),
    (AccessLevel.DELETE.value, "delete: pull, push, delete"),
]


class CreateForm(FlaskForm):
    name = StringField(validators=[InputRequired(), Length(max=TOKEN_NAME_MAX)])
    access = SelectField(choices=LEVELS, default=AccessLevel.READ.value)
    # Namespace names, separated by spaces or commas; empty: every namespace.
    namespaces = StringField(validators=[Optional(), Length(max=2000)])
    expires_days = IntegerField(validators=[Optional()])
    never_expires = BooleanField()


class RevokeForm(FlaskForm):
    token = IntegerField(validators=[InputRequired()])


class AccessTokenView(BaseView):
    route_base = "/access-tokens"
    default_view = "tokens"

    def _page(self, form: CreateForm) -> str:
        principal = current_principal()
        settings = portus().settings
        return self.render_template(
            "portus_fab/access_tokens.html",
            title="Access tokens",
            tokens=access_tokens.listed(portus().session, principal),
            show_owner=principal.is_admin,
            now=utcnow(),
            form=form,
            revoke_form=RevokeForm(),
            state_of=access_tokens.state_of,
            describe=lambda token: access_tokens.ceiling_of(token).describe(),
            default_days=settings.access_token_default_days,
            max_days=settings.access_token_max_days,
            allow_no_expiry=settings.access_token_allow_no_expiry,
            docker_login=docker_login(),
        )

    @expose("/")
    @has_access
    def tokens(self) -> str:
        return self._page(CreateForm())

    @expose("/create", methods=["POST"])
    @has_access
    def create(self) -> str | Response:
        form = CreateForm()
        if not form.validate_on_submit():
            flash("Give the token a name of at most 64 characters.", "danger")
            return self._page(form)
        core = portus()
        try:
            with transaction(core.session) as session:
                created = access_tokens.create_token(
                    session,
                    core.authentication.hasher,
                    access_tokens.ExpiryRules.from_settings(core.settings),
                    g.user,
                    form.name.data or "",
                    form.access.data or "",
                    namespaces=re.split(r"[\s,]+", form.namespaces.data or ""),
                    expires_days=form.expires_days.data,
                    never_expires=bool(form.never_expires.data),
                )
                token, username = created.token, g.user.username
                ceiling = access_tokens.ceiling_of(token).describe()
        except PortusError as error:
            flash(str(error), "danger")
            return self._page(form)
        page = self.render_template(
            "portus_fab/access_token_secret.html",
            title="Access token created",
            token=token,
            ceiling=ceiling,
            secret=created.secret,
            username=username,
            host=core.settings.registry_host,
        )
        # Shown once: no cache, no history entry a back button could bring back from disk.
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/revoke", methods=["POST"])
    @has_access
    def revoke(self) -> Response:
        form = RevokeForm()
        if form.validate_on_submit():
            try:
                with transaction(portus().session) as session:
                    token = access_tokens.revoke_listed(
                        session, current_principal(), form.token.data or 0
                    )
                    name = token.name
            except PortusError as error:
                flash(str(error), "danger")
            else:
                flash(f"Revoked the access token {name!r}: it is refused from now on.", "success")
        return redirect(url_for(".tokens"))
