"""Each user's refresh tokens (what `docker login` keeps instead of the password), with the
client each was issued to and its last use, and a button that revokes one. Admins see everyone's;
which rows anyone sees is the policy's (`manages_credentials_of`), on the list and the revoke
alike."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import IntegerField
from wtforms.validators import InputRequired

from portus_fab.auth import refresh
from portus_fab.core import portus
from portus_fab.errors import PortusError
from portus_fab.models.transaction import transaction
from portus_fab.views.principal import current_principal


class RevokeForm(FlaskForm):
    """One refresh token to revoke, with the CSRF token of the screen."""

    token = IntegerField(validators=[InputRequired()])


class RefreshTokenView(BaseView):
    route_base = "/refresh-tokens"
    default_view = "tokens"

    @expose("/")
    @has_access
    def tokens(self) -> str:
        principal = current_principal()
        return self.render_template(
            "portus_fab/refresh_tokens.html",
            title="Refresh tokens",
            tokens=refresh.listed(portus().session, principal),
            show_owner=principal.is_admin,
            form=RevokeForm(),
        )

    @expose("/revoke", methods=["POST"])
    @has_access
    def revoke(self) -> Response:
        form = RevokeForm()
        if form.validate_on_submit():
            try:
                with transaction(portus().session) as session:
                    token = refresh.revoke(session, current_principal(), form.token.data)
                    client_id = token.client_id
            except PortusError as error:
                flash(str(error), "danger")
            else:
                flash(f"Revoked the refresh token of {client_id}: log in there again.", "success")
        return redirect(url_for(".tokens"))
