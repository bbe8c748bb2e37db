"""Cloud Functions entry points, one per row of ``ttma_relay.functions.FUNCTIONS`` (a test holds
the names and decorators to the table). Decorators only register; the work is in ``handlers/``,
the clients come from ``handlers.wiring``.

An instance serves one function (``FUNCTION_TARGET``): at start-up ``wiring.prepare`` validates
that function's settings and imports its handler alone, so ingest never loads the storage or
HTTP clients of the archivers (BENCHMARKS.md, cold start). Each entry point imports its handler
where it runs; after start-up that is a lookup in ``sys.modules``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import functions_framework

from handlers import wiring

if TYPE_CHECKING:
    import flask
    from cloudevents.http import CloudEvent

wiring.prepare(os.environ.get("FUNCTION_TARGET"))


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """Receives TTMA ``call.ended`` webhooks (public; the HMAC signature authenticates)."""
    from handlers import ingest as handler

    return handler.handle(request, wiring.ingest_deps())


@functions_framework.cloud_event
def archive_transcript(cloud_event: CloudEvent) -> None:
    """Pub/Sub push: ``call.json``, ``transcript.txt`` and ``transcript.json`` into the archive."""
    from handlers import archive_transcript as handler
    from handlers.subscriber import answer_retry_later

    with answer_retry_later():
        handler.handle(cloud_event, wiring.archive_deps())


@functions_framework.cloud_event
def archive_recording(cloud_event: CloudEvent) -> None:
    """Pub/Sub push: the call's MP3, streamed from a fresh signed URL into the archive."""
    from handlers import archive_recording as handler
    from handlers.subscriber import answer_retry_later

    with answer_retry_later():
        handler.handle(cloud_event, wiring.archive_deps())


@functions_framework.http
def reconcile(request: flask.Request) -> flask.Response:
    """Cloud Scheduler (OIDC): publishes the calls the webhook never delivered."""
    from handlers import reconcile as handler

    return handler.handle(request, wiring.reconcile_deps())
