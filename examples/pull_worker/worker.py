"""A pull worker for ttma-relay call events: the shape to start from.

    python examples/pull_worker/worker.py --project my-project \
        --subscription ttma-call-events-worker

Each message's data is the vendor's webhook JSON (``{"event","deliveryId","timestamp","data"}``),
its attributes the strings of docs/architecture.md. Delivery is at least once: the worker
deduplicates on the call id, acks only after ``handle`` returned and nacks when it raised (Pub/Sub
redelivers with the subscription's back-off, then dead-letters). Needs google-cloud-pubsub.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from google.cloud import pubsub_v1

log = logging.getLogger("ttma-worker")
Handler = Callable[[dict[str, Any], dict[str, str]], None]


class OncePerCall:
    """Remembers handled call ids. Replace with a unique key in your own database."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first_time(self, call_id: str) -> bool:
        with self._lock:
            if call_id in self._seen:
                return False
            self._seen.add(call_id)
            return True

    def forget(self, call_id: str) -> None:
        with self._lock:
            self._seen.discard(call_id)


def handle(call: dict[str, Any], attributes: dict[str, str]) -> None:
    """Your work. Log ids and outcomes only: numbers, transcripts and task facts are PII."""
    log.info("call %s ended: %s (%s)", call.get("id"), call.get("endedReason"),
             attributes.get("source"))  # fmt: skip


def callback_for(handler: Handler, once: OncePerCall) -> Callable[[Any], None]:
    """The subscriber callback: parse, skip repeats, handle, then ack (nack on failure)."""

    def on_message(message: Any) -> None:
        try:
            envelope = json.loads(message.data)
            call = envelope["data"]
            call_id = call["id"]
        except (ValueError, KeyError, TypeError):
            log.error("message %s is not a call event; acked and dropped", message.message_id)
            message.ack()  # no retry can fix it (the contract's schema says what to expect)
            return
        if envelope.get("event") != "call.ended" or not once.first_time(call_id):
            message.ack()  # another event type, or this call was handled already
            return
        try:
            handler(call, dict(message.attributes))
        except Exception:
            once.forget(call_id)  # so that the redelivery is handled
            log.exception("handling call %s failed; Pub/Sub will redeliver it", call_id)
            message.nack()
            return
        message.ack()

    return on_message


def run(
    subscription_path: str,
    handler: Handler = handle,
    *,
    client: pubsub_v1.SubscriberClient | None = None,
    max_messages: int = 10,
    timeout: float | None = None,
) -> None:
    """Pull until interrupted (or ``timeout`` seconds), at most ``max_messages`` in hand."""
    subscriber = client or pubsub_v1.SubscriberClient()
    flow = pubsub_v1.types.FlowControl(max_messages=max_messages)
    future = subscriber.subscribe(
        subscription_path, callback=callback_for(handler, OncePerCall()), flow_control=flow
    )
    try:
        future.result(timeout=timeout)
    except TimeoutError:
        pass
    finally:
        future.cancel()
        future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(pubsub_v1.SubscriberClient.subscription_path(args.project, args.subscription))


if __name__ == "__main__":
    main()
