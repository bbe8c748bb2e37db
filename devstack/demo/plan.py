"""The calls ``make demo`` has the sandbox place: every end reason, and every awkward case.

Each entry is a ``simulate_call`` request of the sandbox control API (``POST /_sandbox/calls``)
plus a short label of what it shows. With the default 12 calls: the 11 documented end reasons
and an old-style call (``endedReason: null``), both directions, a transcript not shipped, two
late recordings (ready seconds after the webhook went out with ``recordingAvailable: false``),
two that never come, a duplicate resent after the first was accepted, and two copies sent at the
same moment (one gets 409 while the other is publishing, and the sender retries it). When the
stack serves ``reconcile``, one call's webhook is never sent: reconcile finds it in the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttma_sandbox import END_REASONS

LATE = {4: 6.0, 7: 10.0}  # call index → seconds until its recording is ready
NEVER = {6}  # besides every setupFailed call (no audio at all)
NOT_SHIPPED = {5}
OLD_STYLE_INDEX = 11
RESENT = {1: 1}  # call index → extra sequential copies (a sender that lost our 2xx)
CONCURRENT = {3: 2}  # call index → extra copies sent at the same moment
LOST = 10  # with reconcile: no webhook for this call; reconcile publishes it


@dataclass(frozen=True)
class PlannedCall:
    label: str
    request: dict[str, Any] = field(repr=False)  # POST /_sandbox/calls body

    @property
    def delivered(self) -> bool:
        return bool(self.request.get("deliver"))

    @property
    def recording(self) -> str:
        return str(self.request.get("recording", "early"))


def demo_plan(count: int, *, with_reconcile: bool = False) -> list[PlannedCall]:
    plan = []
    for index in range(count):
        reason = END_REASONS[index % len(END_REASONS)]
        request: dict[str, Any] = {
            "direction": ("outbound", "inbound")[index % 2],
            "ended_reason": reason,
            "deliver": True,
        }
        labels = []
        if reason == "setupFailed" or index in NEVER:
            request["recording"] = "never"
            labels.append("no recording")
        elif index in LATE:
            request.update(recording="late", late_after_seconds=LATE[index])
            labels.append(f"recording {LATE[index]:.0f}s late")
        if index in NOT_SHIPPED:
            request["transcript_shipped"] = False
            labels.append("transcript not shipped")
        if index == OLD_STYLE_INDEX:
            request["old_style"] = True
            labels.append("old-style call")
        if index in RESENT:
            request["duplicates"] = RESENT[index]
            labels.append("resent by the sender")
        if index in CONCURRENT:
            request.update(duplicates=CONCURRENT[index], concurrent_duplicates=True)
            labels.append("3 copies at once")
        if with_reconcile and index == LOST:
            request["deliver"] = False
            labels.append("webhook lost: reconciled")
        plan.append(PlannedCall(", ".join(labels) or "-", request))
    return plan
