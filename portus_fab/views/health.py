"""`GET /health`: for load balancers and monitoring. Anyone learns up or down; admins get the
details of every self-check (they name hosts and settings)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from portus_fab.access.policy import may_see_diagnostics
from portus_fab.core import portus
from portus_fab.ops.diagnostics import run_checks
from portus_fab.views.principal import current_principal

health_blueprint = Blueprint("portus_health", __name__)

# Failing these means portus_fab cannot serve tokens; the others degrade the front end only.
ESSENTIAL = {"database", "registry", "registry trusts our tokens"}


@health_blueprint.get("/health")
def health() -> tuple[Response, int]:
    checks = run_checks(portus())
    healthy = all(check.ok for check in checks if check.name in ESSENTIAL)
    body: dict[str, object] = {"status": "ok" if healthy else "failing"}
    if may_see_diagnostics(current_principal()):
        body["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
    return jsonify(body), 200 if healthy else 503
