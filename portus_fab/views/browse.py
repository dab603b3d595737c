"""Browsing the registry: explore, repository and tag pages, and deletes from the UI."""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from portus_fab.access.policy import Action, may_see_diagnostics
from portus_fab.catalog import browsing, repositories
from portus_fab.core import portus
from portus_fab.models.transaction import transaction
from portus_fab.registry.errors import RegistryError
from portus_fab.views.principal import current_principal

log = logging.getLogger(__name__)


class ConfirmForm(FlaskForm):
    """No fields: carries the CSRF token of a confirmed delete."""


class BrowseView(BaseView):
    route_base = "/registry"
    default_view = "explore"

    def _page(self, name: str) -> browsing.RepositoryPage:
        core = portus()
        page = browsing.repository_page(core.session, core.policy(), current_principal(), name)
        if page is None:
            abort(404)
        return page

    @expose("/")
    @has_access
    def explore(self) -> str:
        core = portus()
        try:
            page_number = int(request.args.get("page", "1"))
        except ValueError:
            page_number = 1
        page = browsing.explore(
            core.session,
            current_principal(),
            query=request.args.get("q", "")[:255],
            sort=request.args.get("sort", "name"),
            page=page_number,
        )
        return self.render_template(
            "portus_fab/explore.html",
            page=page,
            sorts=browsing.SORTS,
            registry_host=core.settings.registry_host,
        )

    @expose("/repositories/<path:name>")
    @has_access
    def repository(self, name: str) -> str:
        page = self._page(name)
        return self.render_template(
            "portus_fab/repository.html",
            page=page,
            registry_host=portus().settings.registry_host,
            Action=Action,
        )

    @expose("/tags/<path:name>/<tag>")
    @has_access
    def tag(self, name: str, tag: str) -> str:
        page = self._page(name)
        found = next((t for t in page.tags if t.name == tag), None)
        if found is None:
            abort(404)
        return self.render_template(
            "portus_fab/tag.html",
            page=page,
            tag=found,
            registry_host=portus().settings.registry_host,
            Action=Action,
        )

    @expose("/delete/<path:name>", methods=["GET", "POST"])
    @has_access
    def delete(self, name: str) -> str | Response:
        """Delete one tag's digest (`?tag=`) or every digest of the repository, in the registry,
        after confirmation. Every tag sharing a digest goes with it: the registry deletes by
        digest only."""
        page = self._page(name)
        access = page.access
        if Action.DELETE not in access.allowed:
            abort(403)
        tag_name = request.values.get("tag")
        targets = [t for t in page.tags if tag_name is None or t.name == tag_name]
        if tag_name is not None and not targets:
            abort(404)
        digests = sorted({t.digest for t in targets})
        sharing = sorted(t.name for t in page.tags if t.digest in digests)
        form = ConfirmForm()
        if request.method == "GET" or not form.validate_on_submit():
            return self.render_template(
                "portus_fab/confirm_delete.html",
                page=page,
                tag_name=tag_name,
                digests=digests,
                sharing=sharing,
                form=form,
            )
        core = portus()
        principal = current_principal()
        repository_name = page.repository.name
        try:
            # Fresh: the page's reads end before the registry's own delete events land.
            with transaction(core.session, fresh=True) as session:
                repositories.delete_digests(
                    session,
                    core.registry_client(deadline=core.settings.registry_deadline),
                    repository_name,
                    digests,
                    actor=principal.username,
                )
        except RegistryError as error:
            log.warning(
                "delete of %s %s for %s failed: %s", name, digests, principal.username, error
            )
            # The full error names the registry's internal URL and the HTTP library's words.
            detail = str(error) if may_see_diagnostics(principal) else error.public_message
            flash(f"The delete did not finish: {detail}", "danger")
            return redirect(url_for("BrowseView.repository", name=name))
        flash(f"Deleted {', '.join(f'{name}:{t}' for t in sharing)}", "success")
        if len(sharing) == len(page.tags):
            return redirect(url_for("BrowseView.explore"))
        return redirect(url_for("BrowseView.repository", name=name))
