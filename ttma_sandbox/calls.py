"""Simulated call records shaped exactly like the vendor's call object.

``new_call`` builds one call from explicit choices; ``mixed_batch_choices`` picks a
deterministic mix (every documented end reason, both directions, shipped and unshipped
transcripts, old-style calls, calls without recordings) for ``simulate_calls``.
All names, numbers and amounts are fictitious but look like the PII the real payloads carry
(``task.facts`` and transcripts), so tests can check that none of it reaches a log.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ttma_relay.contract.ended_reasons import KNOWN_ENDED_REASONS
from ttma_sandbox.clock import format_timestamp

END_REASONS: tuple[str, ...] = KNOWN_ENDED_REASONS
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
RecordingMode = Literal["early", "late", "never"]
RECORDING_MODES: tuple[str, ...] = ("early", "late", "never")
# The order of the keys in the vendor's documented call object.
CALL_FIELDS: tuple[str, ...] = (
    "id",
    "direction",
    "status",
    "endedReason",
    "callerNumber",
    "calledNumber",
    "startedAt",
    "endedAt",
    "durationSeconds",
    "recordingAvailable",
    "hasTranscript",
    "transcript",
    "task",
    "usage",
    "quality",
)
DEFAULT_AGENT_NUMBER = "+16475550100"
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
_PEOPLE = ("Bobby Tables", "Zoë Ångström", "Priya Natarajan", "Marcus O'Neil", "José Muñoz")
_GRADES = ("A", "A", "B", "B", "C", "D")


@dataclass
class SimulatedCall:
    """A call the sandbox knows about, plus what it needs to serve its recording."""

    call: dict[str, Any]
    agent_number: str
    recording: RecordingMode
    recording_bytes: int
    recording_ready_at: datetime | None  # None: never
    sort_key: tuple[int, str] = field(init=False)

    def __post_init__(self) -> None:
        started = datetime.fromisoformat(self.call["startedAt"])
        self.sort_key = (int(started.timestamp() * 1000), self.call["id"])

    @property
    def call_id(self) -> str:
        return str(self.call["id"])

    def recording_ready(self, now: datetime) -> bool:
        return self.recording_ready_at is not None and now >= self.recording_ready_at

    def view(self, now: datetime, *, include_transcript: bool = True) -> dict[str, Any]:
        """The call object as the API shows it at ``now``."""
        data = dict(self.call)
        data["recordingAvailable"] = self.recording_ready(now)
        if not include_transcript:
            del data["transcript"]
        return data


def new_call_id(rng: random.Random) -> str:
    """A vendor-style call id: ``v3:`` and an opaque URL-safe token (note the colon)."""
    return "v3:" + "".join(rng.choice(_ID_ALPHABET) for _ in range(40))


def _customer_number(rng: random.Random) -> str:
    # 555-01xx numbers are reserved for fiction.
    return f"+1{rng.choice(('416', '647', '905'))}55501{rng.randrange(100):02d}"


def _transcript(direction: str, person: str, amount: str, turns: int) -> str:
    if direction == "outbound":
        lines = [
            f"[Agent] Hi, this is Sol calling for {person.split()[0]}.",
            "[Caller] Yeah, speaking.",
            f"[Agent] I'm calling about the balance of {amount} on your account.",
            "[Caller] Right, I can pay that on Friday.",
            "[Agent] Great, I'll send a payment link to this number.",
            "[Caller] Thanks, bye.",
        ]
    else:
        lines = [
            "[Agent] Thanks for calling, this is Sol. How can I help?",
            f"[Caller] Hi, it's {person}, I got a message about my account.",
            "[Agent] Let me look that up for you.",
            f"[Caller] My callback number is {_fixed_number(person)}.",
            "[Agent] Got it, someone will call you back today.",
            "[Caller] Perfect, thank you.",
        ]
    return " ".join(lines[: max(1, min(turns, len(lines)))])


def _fixed_number(person: str) -> str:
    return f"+1647555{sum(map(ord, person)) % 100:04d}"


def new_call(
    rng: random.Random,
    *,
    call_id: str,
    agent_number: str,
    direction: str,
    ended_reason: str | None,
    ended_at: datetime,
    duration_seconds: int,
    transcript_shipped: bool,
    with_task: bool,
    old_style: bool,
    status: str = "completed",
    customer_number: str | None = None,
) -> dict[str, Any]:
    """Build a call object with the documented fields in the documented order.

    ``customer_number``: the other party's number (default: a fictional one drawn by ``rng``).
    """
    person = rng.choice(_PEOPLE)
    amount = f"${rng.randrange(20, 2000)}.{rng.randrange(100):02d}"
    customer = _customer_number(rng)
    customer = customer_number or customer
    turns = 0 if duration_seconds == 0 else rng.randrange(2, 7)
    has_transcript = transcript_shipped and not old_style and turns > 0
    task = None
    if with_task:
        task = {
            "goal": f"Collect {amount} from {person.split()[0]}",
            "script": "debt-collection",
            "facts": {"debtor_name": person, "amount_due": amount, "callback": customer},
            "escalation": None,
        }
    started_at = ended_at - timedelta(seconds=duration_seconds)
    call = {
        "id": call_id,
        "direction": direction,
        "status": status,
        "endedReason": None if old_style else ended_reason,
        "callerNumber": agent_number if direction == "outbound" else customer,
        "calledNumber": customer if direction == "outbound" else agent_number,
        "startedAt": format_timestamp(started_at),
        "endedAt": format_timestamp(ended_at),
        "durationSeconds": duration_seconds,
        "recordingAvailable": False,  # computed per request from the recording's readiness
        "hasTranscript": has_transcript,
        "transcript": _transcript(direction, person, amount, turns) if has_transcript else None,
        "task": task,
        "usage": {
            "turnCount": turns,
            "inputTokens": turns * rng.randrange(300, 700),
            "outputTokens": turns * rng.randrange(150, 400),
        },
        "quality": {
            "grade": rng.choice(_GRADES),
            "p50ResponseLatencyMs": rng.randrange(250, 600),
            "p95ResponseLatencyMs": rng.randrange(600, 1500),
        },
    }
    return call


@dataclass(frozen=True)
class BatchChoice:
    """What ``simulate_calls`` picks for the n-th call of a mixed batch."""

    direction: str
    ended_reason: str
    transcript_shipped: bool
    old_style: bool
    recording: RecordingMode


def mixed_batch_choices(count: int, rng: random.Random) -> list[BatchChoice]:
    """A deterministic mix that walks every documented end reason in turn."""
    choices = []
    for index in range(count):
        reason = END_REASONS[index % len(END_REASONS)]
        direction = DIRECTIONS[rng.randrange(2)]
        failed_setup = reason == "setupFailed"
        choices.append(
            BatchChoice(
                direction=direction,
                ended_reason=reason,
                transcript_shipped=rng.random() >= 0.15,
                old_style=index % 17 == 16,
                recording="never" if failed_setup or rng.random() < 0.1 else "early",
            )
        )
    return choices
