"""The queryable index of archived calls: Firestore ``{CALLS_COLLECTION}/{callKey}``.

One document per call, written by both archivers. Each writes only its own fields (merge), so
the two never overwrite each other; ``deliveryIds`` grows with ``ArrayUnion``. A write happens
only when something would change: a redelivered or duplicated message leaves the document,
``updatedAt`` included, exactly as it was. A status never goes back from ``archived``.

Some fields are *defaults*, written only while the document has no such field: ``source``
(the first delivery that indexed the call keeps it for good), and the ``null`` of a call with
no ``endedReason`` key or no usable ``endedAt`` (that null never replaces a value already
there).
A missing field and a ``null`` are different things here: a wanted ``null`` is written (so
``endedReason == null`` and ``endedAt == null`` queries find the call). Each write is
conditional on the document read (``create``, or an ``update_time`` precondition; no
transactions, as in ingest) and is planned again on a conflict: two archivers indexing the
same new call cannot both be "first".

What goes in (docs/archive.md has the table): call metadata that is useful to query and is not
personal data. Transcripts, ``task`` (its goal and facts name people and amounts) and the other
party's phone number stay out; they are in the bucket, behind its access controls. The agent's
own number (the customer's TTMA deployment) is kept as ``agentNumber``; the other party's only
as ``partyNumberHashes``, keyed hashes that ``ttma-relay forget --phone`` looks up
(``contract.party_numbers``). ``expireAt`` (a default: set once, when the call is first
indexed) lets a Firestore TTL policy delete the document after the retention period.

Every value is written in a form Firestore can store (``storable``): JSON allows strings with
a lone surrogate (``"\\ud800"``) and integers of any size, which Firestore cannot hold (gRPC
sends strings as UTF-8; integers are 64-bit), and a write that fails every time would have the
message redelivered until it is dead-lettered. Such a string is stored with each lone
surrogate as its escape text, such an integer as its decimal text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ttma_relay.contract.call_keys import parse_timestamp
from ttma_relay.contract.messages import KNOWN_SOURCES  # a source outside it is not stored
from ttma_relay.contract.party_numbers import party_number_hashes

Status = Literal["archived", "pending", "not_shipped", "unavailable"]
STATUSES: frozenset[str] = frozenset({"archived", "pending", "not_shipped", "unavailable"})
FINAL_STATUS = "archived"
MAX_WRITE_ATTEMPTS = 5  # another writer changed the document in between: read, plan again
_COPIED_FIELDS = (
    "direction",
    "status",
    "endedReason",
    "durationSeconds",
    "hasTranscript",
    "recordingAvailable",
)
_USAGE_FIELDS = ("turnCount", "inputTokens", "outputTokens")
_QUALITY_FIELDS = ("grade", "p50ResponseLatencyMs", "p95ResponseLatencyMs")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def storable(value: Any) -> Any:
    """``value`` in a form Firestore can store, everything else unchanged.

    A string keeps every character but a lone surrogate (only a JSON escape makes one; it has
    no UTF-8 form), which becomes its six-character escape text: ``"a\\ud800"`` is stored as
    ``a\\ud800`` with a backslash (``str.encode("utf-8", "backslashreplace")``, which changes
    nothing else; a valid surrogate pair has already been joined into one character by the
    JSON parser). An integer outside int64 is stored as its decimal text, ``True`` and
    ``False`` stay booleans. Maps (keys too) and lists are converted member by member;
    timestamps, floats and Firestore's sentinels (``SERVER_TIMESTAMP``, ``ArrayUnion``) pass.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, Mapping):
        return {storable(name): storable(member) for name, member in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(member) for member in value]
    return value


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _picked(source: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(source, Mapping):
        return None
    picked = {name: source[name] for name in names if name in source and _scalar(source[name])}
    return picked or None


def call_metadata(call: Mapping[str, Any], *, phone_hash_key: str) -> dict[str, Any]:
    """The call's indexed fields: no transcript, no task facts or goal, no customer number
    (only its keyed hash, under ``phone_hash_key``)."""
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
    hashes = party_number_hashes(phone_hash_key, call)
    if hashes:
        fields["partyNumberHashes"] = hashes
    return fields


def call_defaults(
    call: Mapping[str, Any], source: str | None, *, expire_at: datetime | None = None
) -> dict[str, Any]:
    """Fields written only when the document lacks them (``CallIndex.record``'s ``defaults``).

    ``endedReason: None`` for a call without the key (old calls), ``endedAt: None`` when it is
    null or unparseable (findable with ``== null``; a later good timestamp replaces it), the
    delivery's ``source`` when it is a known one (the first known source stays), and
    ``expireAt`` when given (the retention period starts when the call is first indexed).
    """
    defaults: dict[str, Any] = {}
    if expire_at is not None:
        defaults["expireAt"] = expire_at
    if "endedReason" not in call or not _scalar(call["endedReason"]):
        defaults["endedReason"] = None
    if parse_timestamp(call.get("endedAt")) is None:
        defaults["endedAt"] = None
    if source in KNOWN_SOURCES:
        defaults["source"] = source
    return defaults


def _same(current: Mapping[str, Any], name: str, wanted: Any) -> bool:
    """Whether ``current`` already holds ``wanted`` under ``name``; a missing field is not
    ``None``, ``True`` is not ``1``, and a NaN (JSON parsers read ``NaN``) is the NaN stored."""
    if name not in current:
        return False
    value = current[name]
    if isinstance(wanted, Mapping):
        return isinstance(value, Mapping) and all(_same(value, k, v) for k, v in wanted.items())
    if isinstance(wanted, float) and math.isnan(wanted):
        return isinstance(value, float) and math.isnan(value)
    return isinstance(value, bool) == isinstance(wanted, bool) and bool(value == wanted)


def _planned_update(
    current: Mapping[str, Any],
    fields: Mapping[str, Any],
    *,
    delivery_id: str | None,
    status_field: str | None,
    defaults: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The merge that brings ``current`` up to date, or ``None`` when nothing would change."""
    wanted = dict(fields)
    if (
        status_field is not None
        and current.get(status_field) == FINAL_STATUS
        and wanted[status_field] != FINAL_STATUS
    ):
        wanted = {k: v for k, v in wanted.items() if not _owned_by(k, status_field)}
    for name, value in defaults.items():
        if name not in wanted and name not in current:
            wanted[name] = value
    changes = {k: v for k, v in wanted.items() if not _same(current, k, v)}
    seen = current.get("deliveryIds") or []
    new_delivery = delivery_id is not None and delivery_id not in seen
    if not changes and not new_delivery:
        return None
    if new_delivery:
        changes["deliveryIds"] = firestore.ArrayUnion([delivery_id])
    changes["updatedAt"] = firestore.SERVER_TIMESTAMP
    return changes


def _contents(snapshot: firestore.DocumentSnapshot) -> dict[str, Any]:
    return (snapshot.to_dict() or {}) if snapshot.exists else {}


def _field_paths(update: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps as field paths (``usage.turnCount``): ``update`` then merges them, as
    ``set(merge=True)`` does, instead of replacing the whole map. Index field names are plain
    identifiers, so the paths need no quoting."""
    paths: dict[str, Any] = {}
    for name, value in update.items():
        if isinstance(value, Mapping):
            paths.update(_field_paths(value, f"{prefix}{name}."))
        else:
            paths[prefix + name] = value
    return paths


Plan = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]


class CallIndex:
    """Reads and writes the index documents. Thread-safe (the Firestore client is)."""

    def __init__(self, client: firestore.Client, collection: str) -> None:
        self._client = client
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
        defaults: Mapping[str, Any] | None = None,
    ) -> bool:
        """Merge ``fields`` into the call's document if anything changes; True if written.

        ``status_field`` names the status in ``fields`` that must not leave ``archived``:
        when the document already says ``archived`` there, that field and everything else in
        ``fields`` describing the archived object are left alone. ``defaults`` are written
        only where the document has no such field (and ``fields`` does not set it). Every value
        is written as ``storable`` makes it.
        """
        if status_field is not None and fields.get(status_field) not in STATUSES:
            raise ValueError(f"{status_field} must be one of {sorted(STATUSES)}")
        reference = self.document(key)
        plan: Plan = partial(  # in stored form: compared with the document as Firestore holds it
            _planned_update,
            fields=storable(fields),
            delivery_id=storable(delivery_id),
            status_field=status_field,
            defaults=storable(defaults or {}),
        )
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            snapshot = reference.get()
            update = plan(_contents(snapshot))
            if update is None:
                return False  # the usual redelivery: one read, no write
            try:
                self._write_if_unchanged(reference, snapshot, update)
            except (gexc.Conflict, gexc.FailedPrecondition, gexc.NotFound):
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
                continue  # written meanwhile by someone else: compare with that
            return True
        raise AssertionError("unreachable")

    def _write_if_unchanged(
        self,
        reference: firestore.DocumentReference,
        snapshot: firestore.DocumentSnapshot,
        update: Mapping[str, Any],
    ) -> None:
        if not snapshot.exists:
            reference.create(dict(update))  # Conflict if another writer created it first
            return
        option = self._client.write_option(last_update_time=snapshot.update_time)
        reference.update(_field_paths(update), option=option)  # FailedPrecondition if changed


def _owned_by(field_name: str, status_field: str) -> bool:
    """Fields that describe the same archive part as ``status_field`` (``transcript...``)."""
    part = status_field.removesuffix("Status")
    return field_name.startswith(part)
