"""The ``archive_recording`` subscriber: the call's MP3 streamed into ``recording.mp3``.

Each attempt asks the API for a fresh signed URL (it expires in minutes and is a bearer
credential: never stored or logged) and streams the download into a resumable upload, so
memory stays bounded by the upload chunk size whatever the recording's size. Everything is
checked before the upload is finalized (an ID3 tag or MPEG frame sync at the start; the
vendor's ``Content-Length``, which the download stream enforces when it ends; Cloud Storage
checks the CRC32C of the final request): a recording that fails is never created in the
bucket, so nothing ever has to be deleted (the function cannot delete).

Late recordings: the vendor fires the webhook after waiting up to 60 s for the recording, with
``recordingAvailable: false`` if it was not ready. A 404 for the recording while the call ended
less than ``RECORDING_WAIT_SECONDS`` ago records ``pending`` and raises (Pub/Sub redelivers with
back-off); after that it records ``unavailable`` and acks.

Acks (returns): archived, already archived, unavailable, ignored (another event type),
poison. Redelivers (raises): not available yet, the API or a Google service failed, a download
that kept failing.
"""

from __future__ import annotations

from typing import Any

from handlers.subscriber import ArchiveDeps, RetryLater, expire_at, run_subscriber
from ttma_relay.adapters.archive_store import ContentRejected, StoredObject, StoredObjectMismatch
from ttma_relay.adapters.call_index import call_defaults, call_metadata
from ttma_relay.adapters.ttma_api import (
    NotFoundError,
    RecordingUrlExpiredError,
    TransportError,
    TtmaApiError,
)
from ttma_relay.contract.call_event import CallEvent
from ttma_relay.contract.call_keys import archive_date, object_prefix

FUNCTION = "archive_recording"
RECORDING_OBJECT = "recording.mp3"
MP3_TYPE = "audio/mpeg"
MAX_DOWNLOAD_ATTEMPTS = 3  # each with a fresh signed URL, within one invocation
DOWNLOAD_CHUNK_BYTES = 256 * 1024


def looks_like_mp3(head: bytes) -> bool:
    """An ID3v2 tag, or an MPEG audio frame sync (11 set bits) at the very start."""
    if head.startswith(b"ID3"):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def handle(cloud_event: Any, deps: ArchiveDeps) -> str:
    """Archive one call event's recording; returns the outcome (acked) or raises (redeliver)."""
    return run_subscriber(
        FUNCTION,
        cloud_event,
        lambda event, context: _archive(event, deps, context),
        is_forgotten=lambda call_id: deps.tombstones.is_forgotten(call_id),
        expected_retry_reasons=("recording_not_ready",),
    )


def _archive(event: CallEvent, deps: ArchiveDeps, context: dict[str, Any]) -> str:
    prefix = object_prefix(event.call, event.delivery_timestamp, fallback=event.publish_time)
    name = prefix + RECORDING_OBJECT
    fields: dict[str, Any] = {
        **call_metadata(event.call, phone_hash_key=deps.settings.phone_hash_key),
        "callKey": event.call_key,
        "archivePrefix": deps.store.uri(prefix),
    }
    stored = deps.store.existing(name)
    if stored is None:
        stored = _download(event, deps, name, fields, context)
    if stored is None:
        _record(deps, event, {**fields, "recordingStatus": "unavailable"})
        return "unavailable"
    fields.update(
        recordingStatus="archived",
        recordingUri=stored.uri,
        recordingBytes=stored.size,
        recordingCrc32c=stored.crc32c,
        recordingMd5=stored.md5,
    )
    if stored.time_created is not None:  # when the bucket created it: stable on redelivery
        fields["recordingArchivedAt"] = stored.time_created
    context.update(bytes=stored.size, created=stored.created)
    context["indexChanged"] = _record(deps, event, fields)
    return "archived" if stored.created else "already_archived"


def _download(
    event: CallEvent, deps: ArchiveDeps, name: str, fields: dict[str, Any], context: dict[str, Any]
) -> StoredObject | None:
    """Stream the recording into ``name``; ``None`` when it will never come (after the wait)."""
    for attempt in range(1, MAX_DOWNLOAD_ATTEMPTS + 1):
        context["attempts"] = attempt
        try:
            signed = deps.api.get_recording_url(event.call_id)
            with deps.api.stream_recording(signed, chunk_size=DOWNLOAD_CHUNK_BYTES) as stream:
                return deps.store.stream_once(
                    name, stream, content_type=MP3_TYPE, signature_check=looks_like_mp3
                )
        except (RecordingUrlExpiredError, TransportError) as error:
            # The URL expired (or was refused) or the download broke off: a fresh URL may do.
            context["lastError"] = type(error).__name__
            continue
        except ContentRejected as rejected:
            if rejected.check != "signature":  # not the bytes declared: download again
                context["lastError"] = f"ContentRejected:{rejected.check}"
                continue
            _pending(deps, event, fields)
            raise RetryLater("not_mp3", "the downloaded recording is not an MP3") from None
        except NotFoundError:
            return _not_available(event, deps, fields, context)
        except TtmaApiError as error:
            context.update(errorType=type(error).__name__, apiStatus=error.status)
            _pending(deps, event, fields)
            raise RetryLater("api_error", "the TTMA API refused the recording request") from None
        except StoredObjectMismatch as mismatch:
            # Cloud Storage finalized something else than what was sent, despite checking the
            # CRC32C: not expected to happen, and not repairable here. Logged as an error.
            context["detail"] = str(mismatch)
            _pending(deps, event, fields)
            raise
    _pending(deps, event, fields)
    raise RetryLater("download_failed", f"no complete download in {MAX_DOWNLOAD_ATTEMPTS} attempts")


def _not_available(
    event: CallEvent, deps: ArchiveDeps, fields: dict[str, Any], context: dict[str, Any]
) -> None:
    """No recording (404): wait for a late one, or give up once the wait has passed."""
    ended = archive_date(event.call, event.delivery_timestamp, event.publish_time)
    age = (deps.now() - ended).total_seconds() if ended is not None else float("inf")
    context["ageSeconds"] = round(age, 1)
    if age < deps.settings.recording_wait_seconds:
        _pending(deps, event, fields)
        raise RetryLater(
            "recording_not_ready", "no recording yet; a late one may still arrive"
        ) from None
    return None


def _pending(deps: ArchiveDeps, event: CallEvent, fields: dict[str, Any]) -> None:
    _record(deps, event, {**fields, "recordingStatus": "pending"})


def _record(deps: ArchiveDeps, event: CallEvent, fields: dict[str, Any]) -> bool:
    return deps.index.record(
        event.call_key,
        fields,
        delivery_id=event.delivery_id,
        status_field="recordingStatus",
        defaults=call_defaults(event.call, event.source, expire_at=expire_at(deps)),
    )
