"""`GET /health`: for load balancers and monitoring. Anyone learns up or down, from the last
checks (cached: see ops/health.py); admins get the details of every self-check (they name hosts
and settings) and may ask for new ones with `?fresh=1`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from portus_fab.access.policy import may_see_diagnostics
from portus_fab.ops.health import health as current_health
from portus_fab.views.principal import current_principal

health_blueprint = Blueprint("portus_health", __name__)


@health_blueprint.get("/health")
def health() -> tuple[Response, int]:
    admin = may_see_diagnostics(current_principal())
    report = current_health(fresh=admin and request.args.get("fresh") == "1")
    body: dict[str, object] = {"status": "ok" if report.healthy else "failing"}
    if admin:
        body["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]
    return jsonify(body), 200 if report.healthy else 503
