"""A realistic ``call.ended`` delivery with fresh ids, for smoke tests and the local stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ttma_relay.contract.timestamps import iso_millis


def sample_delivery(*, now: datetime | None = None) -> dict[str, Any]:
    ended = (now or datetime.now(UTC)).astimezone(UTC)
    started = ended - timedelta(seconds=312)
    return {
        "event": "call.ended",
        "deliveryId": str(uuid.uuid4()),
        "timestamp": iso_millis(ended),
        "data": {
            "id": f"v3:sample-{uuid.uuid4().hex[:16]}",
            "direction": "outbound",
            "status": "completed",
            "endedReason": "botHangup",
            "callerNumber": "+15550100000",
            "calledNumber": "+15550100001",
            "startedAt": iso_millis(started),
            "endedAt": iso_millis(ended),
            "durationSeconds": 312,
            "recordingAvailable": False,
            "hasTranscript": True,
            "transcript": "[Agent] Hi, this is a ttma-relay smoke test. [Caller] Received.",
            "task": {"goal": "Smoke test", "script": "smoke", "facts": {}, "escalation": None},
            "usage": {"turnCount": 2, "inputTokens": 10, "outputTokens": 10},
            "quality": {"grade": "A", "p50ResponseLatencyMs": 300, "p95ResponseLatencyMs": 800},
        },
    }
