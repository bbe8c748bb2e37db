"""What ``make soak`` does, decided up front from ``(calls, seed)``: the calls and the faults.

Everything the soak injects is in the plan, so two runs with the same ``--calls`` and ``--seed``
place the same calls (same options, same order, same offsets) and inject the same faults at the
same offsets with the same durations. What the stack then does under them may differ from run
to run (threads, timeouts); the report says what was injected and when it really happened.

Calls are of four kinds:

- ``normal``: delivered by the sandbox with its retry policy (6 attempts, 1-2-4-8-16 s apart);
  about 30 % get duplicate copies (``duplicates`` 1 or 2), half of those sent concurrently.
- ``no_webhook``: the vendor never sends the webhook; only ``reconcile`` can find the call.
- ``last_killed``: the vendor's *last* attempt (the sandbox's retries set to 0 for that moment)
  reaches ingest while Firestore is paused; the ingest worker is killed while its claim create
  waits there, and the create commits when Firestore resumes: a claim nobody will publish.
- ``last_timeout``: the vendor's last attempt times out at the sender (its timeout lowered to
  2 s for that moment) while Pub/Sub is paused; ingest finishes it after the sender gave up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ttma_sandbox import END_REASONS

DUPLICATE_SHARE = 0.30
NO_WEBHOOK_SHARE = 0.03
LAST_ATTEMPT_SHARE = 0.05  # of each of the two last-attempt kinds
PAUSED_SERVICES = ("firestore", "pubsub", "storage")


@dataclass(frozen=True)
class SoakCall:
    index: int
    kind: str  # normal | no_webhook | last_killed | last_timeout
    at: float  # seconds after the load phase starts (normal, no_webhook); 0 for last_*
    request: dict[str, Any] = field(repr=False)  # POST /_sandbox/calls body

    @property
    def label(self) -> str:
        request = self.request
        parts = [self.kind]
        if request.get("duplicates"):
            concurrent = "concurrent " if request.get("concurrent_duplicates") else ""
            parts.append(f"+{request['duplicates']} {concurrent}copies")
        if request.get("recording") in ("late", "never"):
            parts.append(f"recording {request['recording']}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PlannedFault:
    """One fault of the load phase. ``kind``: pause (a service's process group, SIGSTOP for
    ``duration`` s, then SIGCONT), kill_ingest (SIGKILL ingest's worker ``duration`` s into a
    Pub/Sub pause, so it holds claims), api (sandbox faults on the vendor API), download
    (recording downloads cut short)."""

    kind: str
    target: str
    at: float
    duration: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SoakPlan:
    calls: list[SoakCall]
    faults: list[PlannedFault]
    load_seconds: float
    seed: int

    def of_kind(self, kind: str) -> list[SoakCall]:
        return [call for call in self.calls if call.kind == kind]


def load_seconds_for(count: int) -> float:
    """How long calls are placed: long enough for every fault, about 4 calls/s beyond that."""
    return max(40.0, count / 4.0)


def _request(rng: random.Random, index: int, *, deliver: bool, extras: bool) -> dict[str, Any]:
    reason = END_REASONS[index % len(END_REASONS)]
    request: dict[str, Any] = {
        "direction": rng.choice(("outbound", "inbound")),
        "ended_reason": reason,
        "deliver": deliver,
        "seed": rng.randrange(2**32),
    }
    roll = rng.random()
    if reason == "setupFailed" or roll < 0.08:
        request["recording"] = "never"
    elif roll < 0.18:
        # Late, but well inside the local RECORDING_WAIT_SECONDS (20 s): it must be archived.
        request.update(recording="late", late_after_seconds=round(rng.uniform(3.0, 7.0), 1))
    if rng.random() < 0.1:
        request["transcript_shipped"] = False
    if extras and rng.random() < DUPLICATE_SHARE:
        request["duplicates"] = rng.choice((1, 2))
        request["concurrent_duplicates"] = rng.random() < 0.5
    return request


def soak_plan(count: int, seed: int = 0) -> SoakPlan:
    if count < 1:
        raise ValueError("count must be at least 1")
    rng = random.Random(seed)  # noqa: S311  a seeded, repeatable soak plan, not a secret
    load = load_seconds_for(count)
    last_each = max(1, round(count * LAST_ATTEMPT_SHARE)) if count >= 6 else 0
    no_webhook = max(1, round(count * NO_WEBHOOK_SHARE)) if count >= 4 else 0
    kinds = ["last_killed"] * last_each + ["last_timeout"] * last_each + ["no_webhook"] * no_webhook
    kinds += ["normal"] * (count - len(kinds))
    kinds = kinds[:count]
    rng.shuffle(kinds)
    placed = [i for i, kind in enumerate(kinds) if not kind.startswith("last_")]
    spacing = load / max(1, len(placed))
    offsets = {index: round(n * spacing, 3) for n, index in enumerate(placed)}
    calls = []
    for index, kind in enumerate(kinds):
        request = _request(rng, index, deliver=kind != "no_webhook", extras=kind == "normal")
        if kind.startswith("last_"):
            request.pop("recording", None)  # ready at once: the sender does not wait first
            request.pop("late_after_seconds", None)
        calls.append(SoakCall(index, kind, offsets.get(index, 0.0), request))
    return SoakPlan(calls, fault_schedule(rng, count, load), load, seed)


def fault_schedule(rng: random.Random, count: int, load: float) -> list[PlannedFault]:
    """The load phase's faults, one after another over its first 40 s (scaled up with it)."""
    scale = load / 40.0
    per_fault = max(6, count // 6)

    def at(base: float) -> float:
        return round((base + rng.uniform(0.0, 1.5)) * scale, 2)

    return [
        PlannedFault("pause", "firestore", at(3.0), round(rng.uniform(4.0, 6.0), 1)),
        PlannedFault("api", "GET /v1/voice/calls/*", at(9.0), options={
            "status": 503, "count": per_fault}),
        PlannedFault("api", "GET /v1/voice/calls", at(9.5), options={
            "status": 429, "count": 3, "retry_after": 1}),
        PlannedFault("kill_ingest", "pubsub", at(13.0), round(rng.uniform(2.0, 3.0), 1),
                     options={"pause": round(rng.uniform(5.0, 7.0), 1)}),
        PlannedFault("download", "GET /_recordings/*", at(21.0), options={
            "status": None, "truncate_after": rng.choice((1024, 4096, 20000)),
            "count": per_fault}),
        PlannedFault("pause", "pubsub", at(24.0), round(rng.uniform(4.0, 6.0), 1)),
        PlannedFault("pause", "storage", at(31.0), round(rng.uniform(4.0, 6.0), 1)),
    ]  # fmt: skip
