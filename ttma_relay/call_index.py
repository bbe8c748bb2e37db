"""The queryable index of archived calls: Firestore ``{CALLS_COLLECTION}/{callKey}``.

One document per call, written by both archivers. Each writes only its own fields (merge), so
the two never overwrite each other; ``deliveryIds`` grows with ``ArrayUnion``. A write happens
only when something would change: a redelivered or duplicated message leaves the document,
``updatedAt`` included, exactly as it was. A status never goes back from ``archived``.

What goes in (docs/archive.md has the table): call metadata that is useful to query and is not
personal data. Transcripts, ``task`` (its goal and facts name people and amounts) and the other
party's phone number stay out; they are in the bucket, behind its access controls. The agent's
own number (the customer's TTMA deployment) is kept as ``agentNumber``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from google.cloud import firestore

from ttma_relay.call_keys import parse_timestamp

Status = Literal["archived", "pending", "not_shipped", "unavailable"]
STATUSES: frozenset[str] = frozenset({"archived", "pending", "not_shipped", "unavailable"})
FINAL_STATUS = "archived"
_COPIED_FIELDS = ("direction", "status", "endedReason", "durationSeconds", "hasTranscript")
_USAGE_FIELDS = ("turnCount", "inputTokens", "outputTokens")
_QUALITY_FIELDS = ("grade", "p50ResponseLatencyMs", "p95ResponseLatencyMs")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _picked(source: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(source, Mapping):
        return None
    picked = {name: source[name] for name in names if name in source and _scalar(source[name])}
    return picked or None


def call_metadata(call: Mapping[str, Any]) -> dict[str, Any]:
    """The call's indexed fields: no transcript, no task facts or goal, no customer number."""
    fields: dict[str, Any] = {"callId": call.get("id")}
    for name in _COPIED_FIELDS:
        if name in call and _scalar(call[name]):
            fields[name] = call[name]
    for name in ("startedAt", "endedAt"):
        moment = parse_timestamp(call.get(name))
        if moment is not None:
            fields[name] = moment
    direction = call.get("direction")
    agent = {"outbound": call.get("callerNumber"), "inbound": call.get("calledNumber")}.get(
        direction if isinstance(direction, str) else ""
    )
    if isinstance(agent, str) and agent:
        fields["agentNumber"] = agent
    task = call.get("task")
    if isinstance(task, Mapping) and isinstance(task.get("script"), str):
        fields["taskScript"] = task["script"]
    for name, names in (("usage", _USAGE_FIELDS), ("quality", _QUALITY_FIELDS)):
        picked = _picked(call.get(name), names)
        if picked is not None:
            fields[name] = picked
    return fields


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        return isinstance(current, Mapping) and all(
            _same(current.get(k), v) for k, v in wanted.items()
        )
    return bool(current == wanted)


class CallIndex:
    """Reads and writes the index documents. Thread-safe (the Firestore client is)."""

    def __init__(self, client: firestore.Client, collection: str) -> None:
        self._collection = client.collection(collection)

    def document(self, key: str) -> firestore.DocumentReference:
        return self._collection.document(key)

    def get(self, key: str) -> dict[str, Any] | None:
        snapshot = self.document(key).get()
        return snapshot.to_dict() if snapshot.exists else None

    def record(
        self,
        key: str,
        fields: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        status_field: str | None = None,
    ) -> bool:
        """Merge ``fields`` into the call's document if anything changes; True if written.

        ``status_field`` names the status in ``fields`` that must not leave ``archived``:
        when the document already says ``archived`` there, that field and everything else in
        ``fields`` describing the archived object are left alone.
        """
        if status_field is not None and fields.get(status_field) not in STATUSES:
            raise ValueError(f"{status_field} must be one of {sorted(STATUSES)}")
        reference = self.document(key)
        snapshot = reference.get()
        current = snapshot.to_dict() if snapshot.exists else {}
        current = current or {}
        wanted = dict(fields)
        if (
            status_field is not None
            and current.get(status_field) == FINAL_STATUS
            and wanted[status_field] != FINAL_STATUS
        ):
            wanted = {k: v for k, v in wanted.items() if not _owned_by(k, status_field)}
        changes = {k: v for k, v in wanted.items() if not _same(current.get(k), v)}
        seen = current.get("deliveryIds") or []
        new_delivery = delivery_id is not None and delivery_id not in seen
        if not changes and not new_delivery:
            return False
        update: dict[str, Any] = dict(changes)
        if new_delivery:
            update["deliveryIds"] = firestore.ArrayUnion([delivery_id])
        update["updatedAt"] = firestore.SERVER_TIMESTAMP
        reference.set(update, merge=True)
        return True


def _owned_by(field_name: str, status_field: str) -> bool:
    """Fields that describe the same archive part as ``status_field`` (``transcript...``)."""
    part = status_field.removesuffix("Status")
    return field_name.startswith(part)
