"""Cloud Functions entry points. Decorators only register; the work is in ``handlers/``."""

from __future__ import annotations

import flask
import functions_framework

from handlers import ingest as ingest_handler
from ttma_relay import deps


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """Receives TTMA ``call.ended`` webhooks (public; the HMAC signature authenticates)."""
    return ingest_handler.handle(request, deps.ingest_deps())
