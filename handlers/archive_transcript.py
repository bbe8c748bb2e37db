"""The ``archive_transcript`` subscriber: ``call.json`` and the transcript into the archive.

For each call event: ``call.json`` always; ``transcript.txt`` (the text as shipped) and
``transcript.json`` (its turns) when there is a transcript. A message without the transcript
but with ``hasTranscript: true`` (reconciled calls come from the list API, which omits it) is
completed from ``GET /v1/voice/calls/{id}``. ``hasTranscript: false`` is recorded as
``not_shipped``. Then the index ``calls/{callKey}`` is updated.

Acks (returns): archived, already archived, not shipped, unavailable (the API does not know
the call), ignored (another event type), poison. Redelivers (raises ``RetryLater``): the API or
a Google service failed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from handlers.subscriber import ArchiveDeps, RetryLater, expire_at, run_subscriber
from ttma_relay.adapters.archive_store import StoredObject
from ttma_relay.adapters.call_index import call_defaults, call_metadata
from ttma_relay.adapters.ttma_api import NotFoundError, TtmaApiError
from ttma_relay.contract.call_event import CallEvent
from ttma_relay.contract.call_keys import object_prefix
from ttma_relay.contract.transcript_turns import parse_turns, transcript_document

FUNCTION = "archive_transcript"
CALL_OBJECT = "call.json"
TRANSCRIPT_TEXT_OBJECT = "transcript.txt"
TRANSCRIPT_JSON_OBJECT = "transcript.json"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


def json_bytes(document: Any) -> bytes:
    """Readable UTF-8 JSON; a lone surrogate (valid in JSON input) becomes a ``\\uXXXX`` escape."""
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False)
    return (text + "\n").encode("utf-8", errors="backslashreplace")


def handle(cloud_event: Any, deps: ArchiveDeps) -> str:
    """Archive one call event's call object and transcript; returns the outcome (acked)."""
    return run_subscriber(
        FUNCTION,
        cloud_event,
        lambda event, context: _archive(event, deps, context),
        is_forgotten=lambda call_id: deps.tombstones.is_forgotten(call_id),
    )


def _archive(event: CallEvent, deps: ArchiveDeps, context: dict[str, Any]) -> str:
    prefix = object_prefix(event.call, event.delivery_timestamp, fallback=event.publish_time)
    store = deps.store
    fields: dict[str, Any] = {
        **call_metadata(event.call, phone_hash_key=deps.settings.phone_hash_key),
        "callKey": event.call_key,
        "archivePrefix": store.uri(prefix),
        "callJsonUri": store.uri(prefix + CALL_OBJECT),
    }
    call, transcript, status = _with_transcript(event, deps, fields, context)
    call_json = store.write_once(prefix + CALL_OBJECT, json_bytes(call), content_type=JSON_TYPE)
    _set_archived_at(fields, "callJsonArchivedAt", [call_json])
    created = int(call_json.created)
    if transcript is not None:
        turns = parse_turns(transcript)
        text = transcript.encode("utf-8", errors="replace")
        document = json_bytes(transcript_document(event.call_id, turns))
        stored = [
            store.write_once(prefix + name, data, content_type=content_type)
            for name, data, content_type in (
                (TRANSCRIPT_TEXT_OBJECT, text, TEXT_TYPE),
                (TRANSCRIPT_JSON_OBJECT, document, JSON_TYPE),
            )
        ]
        created += sum(part.created for part in stored)
        fields.update(
            transcriptTextUri=store.uri(prefix + TRANSCRIPT_TEXT_OBJECT),
            transcriptJsonUri=store.uri(prefix + TRANSCRIPT_JSON_OBJECT),
            transcriptTurnCount=len(turns),
        )
        _set_archived_at(fields, "transcriptArchivedAt", stored)
        context["turns"] = len(turns)
    fields["transcriptStatus"] = status
    context["objectsCreated"] = created
    context["indexChanged"] = _record(deps, event, fields)
    if status == "archived" and not created:
        return "already_archived"
    return status


def _set_archived_at(fields: dict[str, Any], name: str, stored: list[StoredObject]) -> None:
    """``name``: when the last of ``stored`` was created in the bucket (its ``timeCreated``,
    the same on every redelivery); left out if the bucket did not say."""
    times: list[datetime] = [part.time_created for part in stored if part.time_created]
    if len(times) == len(stored):
        fields[name] = max(times)


def _with_transcript(
    event: CallEvent, deps: ArchiveDeps, fields: dict[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any], str | None, str]:
    """(call object for call.json, transcript or None, transcript status)."""
    call = event.call
    transcript = call.get("transcript")
    if isinstance(transcript, str):
        return call, transcript, "archived"
    if call.get("hasTranscript") is not True:
        return call, None, "not_shipped"
    try:
        fetched = deps.api.get_call(event.call_id)
    except NotFoundError:
        return call, None, "unavailable"  # the API does not know the call: nothing will come
    except TtmaApiError as error:
        context.update(errorType=type(error).__name__, apiStatus=error.status)
        _record(deps, event, {**fields, "transcriptStatus": "pending"})
        raise RetryLater("api_error", "could not fetch the call's transcript") from None
    context["fetched"] = True
    transcript = fetched.get("transcript")
    if isinstance(transcript, str):
        return fetched, transcript, "archived"
    if fetched.get("hasTranscript") is True:
        _record(deps, event, {**fields, "transcriptStatus": "pending"})
        raise RetryLater("transcript_missing", "the API has no transcript for the call yet")
    return fetched, None, "not_shipped"


def _record(deps: ArchiveDeps, event: CallEvent, fields: dict[str, Any]) -> bool:
    return deps.index.record(
        event.call_key,
        fields,
        delivery_id=event.delivery_id,
        status_field="transcriptStatus",
        defaults=call_defaults(event.call, event.source, expire_at=expire_at(deps)),
    )
