"""`POST /v2/webhooks/events`: the registry's notifications.

The registry retries any answer outside 200-399 forever and holds its queue behind it, so once
the caller is authenticated this endpoint answers 200 for whatever it receives: odd events are
recorded as rejected (visible to admins) and skipped. It only stores the events; the process's
event applier applies them to the catalog moments later and enqueues the enrichment. It never
calls the registry.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request

from portus_fab.catalog import events
from portus_fab.core import portus
from portus_fab.registry.notifications import parse_envelope

log = logging.getLogger(__name__)

webhook_blueprint = Blueprint("portus_webhook", __name__)

# Far above what a registry sends (an envelope holds a few events); bounds hostile input.
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024


def _authorized() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    expected = portus().settings.webhook_secret
    return scheme.lower() == "bearer" and hmac.compare_digest(
        secret.strip().encode(), expected.encode()
    )


@webhook_blueprint.post("/v2/webhooks/events")
def registry_events() -> tuple[Response, int]:
    if not _authorized():
        return jsonify(
            {
                "errors": [
                    {"code": "UNAUTHORIZED", "message": "missing or wrong webhook bearer secret"}
                ]
            }
        ), 401
    # Never hold more than that (plus one byte, so that the parser can tell).
    body = request.stream.read(MAX_ENVELOPE_BYTES + 1)
    envelope = parse_envelope(body, request.content_type, max_bytes=MAX_ENVELOPE_BYTES)
    core = portus()
    result = events.store(core.session, envelope)
    if result.accepted:
        core.event_applier.wake()
    return jsonify(result.summary()), 200
