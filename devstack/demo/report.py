"""What ``make demo`` found: per call its archive state, then totals, dead letters and lag.

Lag is measured per archived recording from the ingest's claim of the call's first delivery
(``claimedAt`` in the deliveries collection: the moment the webhook arrived) to the creation of
``recording.mp3`` in the bucket (the object's ``timeCreated``). Both clocks are this machine's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devstack.demo.plan import PlannedCall

FINAL_TRANSCRIPT = frozenset({"archived", "not_shipped", "unavailable"})
FINAL_RECORDING = frozenset({"archived", "unavailable"})


def is_final(record: Mapping[str, Any] | None) -> bool:
    return (
        record is not None
        and record.get("transcriptStatus") in FINAL_TRANSCRIPT
        and record.get("recordingStatus") in FINAL_RECORDING
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.5 → p50)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class CallOutcome:
    index: int
    planned: PlannedCall
    call: dict[str, Any]  # as the sandbox created it
    record: dict[str, Any] | None = None  # the index document
    delivery: dict[str, Any] | None = None  # the sandbox's delivery log entry
    objects: list[str] = field(default_factory=list)  # object names under the call's prefix
    lag_seconds: float | None = None

    @property
    def call_id(self) -> str:
        return str(self.call["id"])

    @property
    def attempts(self) -> list[dict[str, Any]]:
        return list((self.delivery or {}).get("attempts", []))

    def status(self, name: str) -> str:
        return str((self.record or {}).get(name) or "missing")


@dataclass
class DemoReport:
    outcomes: list[CallOutcome]
    dead_letters: list[dict[str, str]]
    bucket: str
    waited_seconds: float

    def lags(self, recording: str | None = None) -> list[float]:
        return [
            o.lag_seconds
            for o in self.outcomes
            if o.lag_seconds is not None and (recording is None or o.planned.recording == recording)
        ]

    @property
    def complete(self) -> bool:
        return all(is_final(o.record) for o in self.outcomes)

    @property
    def statuses_410(self) -> int:
        return sum(1 for o in self.outcomes for a in o.attempts if a.get("status") == 410)


def lag_text(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f}"
        f" ms (n={len(values)})"
    )


def _delivery_text(outcome: CallOutcome) -> str:
    statuses = [a.get("status") or a.get("error") for a in outcome.attempts]
    if not statuses:
        return str((outcome.delivery or {}).get("outcome", "(none sent)"))
    return " ".join(str(s) for s in statuses)


def _short(call_id: str) -> str:
    return call_id if len(call_id) <= 16 else call_id[:15] + "…"


def render(report: DemoReport) -> str:
    header = ("#", "CALL", "DIR", "ENDED REASON", "CASE", "WEBHOOK ANSWERS", "TRANSCRIPT",
              "RECORDING", "LAG")  # fmt: skip
    rows = []
    for o in report.outcomes:
        lag = f"{o.lag_seconds * 1000:.0f} ms" if o.lag_seconds is not None else "-"
        rows.append((
            str(o.index + 1), _short(o.call_id), o.call.get("direction", "-"),
            o.call.get("endedReason") or "(null)", o.planned.label, _delivery_text(o),
            o.status("transcriptStatus"), o.status("recordingStatus"), lag,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(header)).rstrip()]
    for o, row in zip(report.outcomes, rows, strict=True):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        prefix = str((o.record or {}).get("archivePrefix") or "")
        names = sorted({name.rsplit("/", 1)[-1] for name in o.objects})
        if prefix:
            lines.append(f"{'':>{widths[0]}}  └ {prefix}  {' '.join(names) or '(no objects)'}")
    lines += ["", *totals(report)]
    return "\n".join(lines)


def totals(report: DemoReport) -> list[str]:
    outcomes = report.outcomes
    transcripts = Counter(o.status("transcriptStatus") for o in outcomes)
    recordings = Counter(o.status("recordingStatus") for o in outcomes)
    answers = Counter(str(a.get("status") or a.get("error")) for o in outcomes for a in o.attempts)
    done = sum(is_final(o.record) for o in outcomes)
    lines = [
        f"calls: {len(outcomes)} placed, {done} settled in {report.waited_seconds:.1f} s"
        + ("" if report.complete else "  (TIMED OUT: some calls are not settled, see the logs)"),
        "transcripts: " + _counts(transcripts),
        "recordings:  " + _counts(recordings),
        "webhook attempts by answer: "
        + _counts(answers)
        + f'  (410: {report.statuses_410}; duplicates are answered 200 "duplicate")',
        f"objects in gs://{report.bucket}: {sum(len(o.objects) for o in outcomes)}",
    ]
    if report.dead_letters:
        lines.append(f"dead letters: {len(report.dead_letters)}")
        lines += [
            f"  {d.get('callId', '-')}  {d.get('subscription', '')}  attempts "
            f"{d.get('deliveryAttempt', '?')}"
            for d in report.dead_letters
        ]
    else:
        lines.append("dead letters: 0")
    lines += [
        "lag, webhook received → recording archived:",
        f"  all recordings:   {lag_text(report.lags())}",
        f"  ready at once:    {lag_text(report.lags('early'))}",
        f"  late recordings:  {lag_text(report.lags('late'))}",
    ]
    return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
