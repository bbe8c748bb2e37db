"""Cloud Functions entry points, one per row of ``ttma_relay.functions.FUNCTIONS`` (a test holds
the names and decorators to the table). Decorators only register; the work is in ``handlers/``,
the clients come from ``handlers.wiring``."""

from __future__ import annotations

import os

import flask
import functions_framework
from cloudevents.http import CloudEvent

from handlers import archive_recording as archive_recording_handler
from handlers import archive_transcript as archive_transcript_handler
from handlers import ingest as ingest_handler
from handlers import reconcile as reconcile_handler
from handlers import wiring
from handlers.subscriber import answer_retry_later

wiring.validate_settings_for(os.environ.get("FUNCTION_TARGET"))
wiring.warm_in_worker(os.environ.get("FUNCTION_TARGET"))


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """Receives TTMA ``call.ended`` webhooks (public; the HMAC signature authenticates)."""
    return ingest_handler.handle(request, wiring.ingest_deps())


@functions_framework.cloud_event
def archive_transcript(cloud_event: CloudEvent) -> None:
    """Pub/Sub push: ``call.json``, ``transcript.txt`` and ``transcript.json`` into the archive."""
    with answer_retry_later():
        archive_transcript_handler.handle(cloud_event, wiring.archive_deps())


@functions_framework.cloud_event
def archive_recording(cloud_event: CloudEvent) -> None:
    """Pub/Sub push: the call's MP3, streamed from a fresh signed URL into the archive."""
    with answer_retry_later():
        archive_recording_handler.handle(cloud_event, wiring.archive_deps())


@functions_framework.http
def reconcile(request: flask.Request) -> flask.Response:
    """Cloud Scheduler (OIDC): publishes the calls the webhook never delivered."""
    return reconcile_handler.handle(request, wiring.reconcile_deps())
