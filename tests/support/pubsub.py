"""Reading what reached a topic, through a real pull subscription on the emulator."""

from __future__ import annotations

import time
from typing import Any

from google.api_core import exceptions as gexc


def pull_all(subscriber: Any, subscription: str, *, settle: float = 1.0) -> list[Any]:
    """Pull and ack until nothing new arrives for ``settle`` seconds; returns the messages."""
    messages: list[Any] = []
    quiet_until = time.monotonic() + settle
    while time.monotonic() < quiet_until:
        try:
            response = subscriber.pull(
                subscription=subscription, max_messages=100, timeout=max(settle, 0.5)
            )
        except gexc.DeadlineExceeded:
            continue
        if response.received_messages:
            messages.extend(m.message for m in response.received_messages)
            subscriber.acknowledge(
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
            quiet_until = time.monotonic() + settle
        else:
            time.sleep(0.05)
    return messages
