"""``make soak``'s verdict, computed only from what is visible outside the pipeline.

Inputs (``SoakObservations``): the calls the sandbox placed and what the vendor's API says of
each (``recordingAvailable``), the objects in the archive bucket (name, generation, creation
time) and the generation each had when first seen, the Firestore index, every message the
soak's own pull subscription received from the topic, the dead-letter hold subscription. The
delivery records and the sandbox's delivery log are used only to *explain* a loss, never to
decide one.

- **lost**: a call with no ``call.json``, no index entry, or never on the topic.
- **missing recording**: the vendor says ``recordingAvailable: true``, no ``recording.mp3``.
- **double-archived**: an object whose generation changed after it was first seen, or created
  later than the index says it was archived (writes are ``if_generation_match=0``: impossible
  by design).
- **duplicate events**: calls with more than one distinct message on the soak's subscription.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ttma_relay.contract.call_keys import call_key

FINAL = {"transcriptStatus": {"archived", "not_shipped", "unavailable"},
         "recordingStatus": {"archived", "unavailable"}}  # fmt: skip
OVERWRITE_TOLERANCE_SECONDS = 0.5
INDEX_TIMES = {"call.json": "callJsonArchivedAt", "recording.mp3": "recordingArchivedAt"}


@dataclass(frozen=True)
class PlacedCall:
    call_id: str
    kind: str
    label: str = ""


@dataclass(frozen=True)
class StoredObject:
    name: str
    generation: int
    time_created: datetime | None = None


@dataclass(frozen=True)
class TopicEvent:
    call_id: str
    message_id: str
    delivery_id: str
    source: str


@dataclass
class SoakObservations:
    calls: list[PlacedCall]
    vendor_recording: dict[str, bool]  # callId → recordingAvailable (the API, at the end)
    objects: list[StoredObject]
    first_generations: dict[str, int]  # object name → generation when first seen
    index: dict[str, dict[str, Any]]  # callId → index document
    events: list[TopicEvent]
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    # Diagnosis only: callId → "webhook <outcome> [statuses]; records: <deliveryId> <state>".
    explanations: dict[str, str] = field(default_factory=dict)


@dataclass
class SoakReport:
    placed: int
    lost: dict[str, list[str]]  # callId → reasons
    missing_recordings: list[str]
    double_archived: list[str]  # object names
    events_per_call: dict[str, int]
    duplicate_kinds: Counter[str]
    duplicated_by_kind: Counter[str]
    unsettled: list[str]
    dead_letters: list[dict[str, str]]
    lost_by_kind: Counter[str]
    explanations: dict[str, str]

    @property
    def duplicated_calls(self) -> int:
        return sum(1 for n in self.events_per_call.values() if n > 1)

    @property
    def max_events(self) -> int:
        return max(self.events_per_call.values(), default=0)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.missing_recordings and not self.double_archived


def _object_parts(name: str) -> tuple[str, str] | None:
    """``calls/YYYY/MM/DD/<callKey>/<file>`` → (callKey, file)."""
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "calls":
        return None
    return parts[4], parts[5]


def is_settled(record: Mapping[str, Any] | None) -> bool:
    return record is not None and all(record.get(k) in v for k, v in FINAL.items())


def _seconds(later: datetime | None, earlier: Any) -> float | None:
    if later is None or not isinstance(earlier, datetime):
        return None
    return (later - earlier).total_seconds()


def judge(obs: SoakObservations) -> SoakReport:
    files: dict[str, set[str]] = defaultdict(set)
    by_key: dict[str, StoredObject] = {}
    for obj in obs.objects:
        parts = _object_parts(obj.name)
        if parts is not None:
            files[parts[0]].add(parts[1])
            by_key["/".join(parts)] = obj
    messages: dict[str, dict[str, TopicEvent]] = defaultdict(dict)
    for event in obs.events:
        messages[event.call_id][event.message_id] = event
    lost: dict[str, list[str]] = {}
    missing, unsettled = [], []
    kinds = {c.call_id: c.kind for c in obs.calls}
    for call in obs.calls:
        key = call_key(call.call_id)
        reasons = []
        if "call.json" not in files.get(key, set()):
            reasons.append("no call.json")
        if call.call_id not in obs.index:
            reasons.append("no index entry")
        if not messages.get(call.call_id):
            reasons.append("never on the topic")
        if reasons:
            lost[call.call_id] = reasons
        if obs.vendor_recording.get(call.call_id) and "recording.mp3" not in files.get(key, set()):
            missing.append(call.call_id)
        if call.call_id in obs.index and not is_settled(obs.index[call.call_id]):
            unsettled.append(call.call_id)
    double = sorted(
        obj.name for obj in obs.objects
        if obs.first_generations.get(obj.name, obj.generation) != obj.generation
    )  # fmt: skip
    for call in obs.calls:
        record = obs.index.get(call.call_id) or {}
        key = call_key(call.call_id)
        for file, time_field in INDEX_TIMES.items():
            obj = by_key.get(f"{key}/{file}")
            late = _seconds(obj.time_created if obj else None, record.get(time_field))
            if obj and late is not None and late > OVERWRITE_TOLERANCE_SECONDS:
                double.append(obj.name)
    duplicate_kinds: Counter[str] = Counter()
    duplicated_by_kind: Counter[str] = Counter()
    for call_id, found in messages.items():
        if len(found) > 1:
            duplicated_by_kind[kinds.get(call_id, "?")] += 1
            ids = Counter(e.delivery_id for e in found.values())
            sources = "+".join(sorted(e.source for e in found.values()))
            same = "same delivery id published again" if max(ids.values()) > 1 else (
                "different delivery ids")  # fmt: skip
            duplicate_kinds[f"{sources} ({same})"] += 1
    return SoakReport(
        placed=len(obs.calls),
        lost=lost,
        missing_recordings=missing,
        double_archived=sorted(set(double)),
        events_per_call={c.call_id: len(messages.get(c.call_id, {})) for c in obs.calls},
        duplicate_kinds=duplicate_kinds,
        duplicated_by_kind=duplicated_by_kind,
        unsettled=unsettled,
        dead_letters=obs.dead_letters,
        lost_by_kind=Counter(kinds.get(cid, "?") for cid in lost),
        explanations={cid: obs.explanations.get(cid, "") for cid in lost},
    )


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items())) or "none"


def render(report: SoakReport, *, faults: list[Any], timings: Mapping[str, float],
           extra: list[str] | None = None) -> str:  # fmt: skip
    lines = ["faults injected (seconds since the soak started):"]
    for f in faults:
        took = f" for {f.seconds:.1f} s" if f.seconds else ""
        lines.append(f"  {f.started:7.1f}  {f.kind:<9} {f.target}{took}"
                     + (f"  [{f.detail}]" if f.detail else ""))  # fmt: skip
    lines += [*(extra or []), "", f"calls placed:            {report.placed}"]
    reasons = Counter(r for rs in report.lost.values() for r in rs)
    lines.append(f"lost:                    {len(report.lost)}"
                 + (f"  ({_counts(reasons)}; by kind: {_counts(report.lost_by_kind)})"
                    if report.lost else ""))  # fmt: skip
    for call_id, why in sorted(report.lost.items()):
        lines.append(f"  {call_id}  {', '.join(why)}  ← {report.explanations.get(call_id, '')}")
    lines += [
        f"missing recordings:      {len(report.missing_recordings)}",
        *(f"  {call_id}" for call_id in report.missing_recordings),
        f"double-archived objects: {len(report.double_archived)}",
        *(f"  {name}" for name in report.double_archived),
        f"duplicate events:        {report.duplicated_calls} calls with more than one event "
        f"on the topic (max {report.max_events} for one call)"
        + (f": {_counts(report.duplicate_kinds)}; by kind of call: "
           f"{_counts(report.duplicated_by_kind)}" if report.duplicate_kinds else ""),
        f"not settled in the index: {len(report.unsettled)}",
        f"dead letters:            {len(report.dead_letters)}",
        *(f"  {d.get('callId', '-')} attempts {d.get('deliveryAttempt', '?')}"
          for d in report.dead_letters[:20]),
        "durations: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
        "verdict: " + ("NOTHING LOST" if report.ok else "LOSS"),
    ]  # fmt: skip
    return "\n".join(lines)
