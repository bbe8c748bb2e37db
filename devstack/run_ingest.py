"""`make run`: the emulators plus the ingest function, served locally with a dev secret.

Foreground; Ctrl-C stops everything it started. Prints how to send a signed test delivery.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

from google.cloud import pubsub_v1

from devstack.emulators import EmulatorError, build_emulators
from devstack.functions import start_function

STATE_DIR = Path(".devstack")
PROJECT = "ttma-relay-local"
TOPIC = "ttma-call-events"


def main() -> int:
    port = int(os.environ.get("INGEST_PORT", "8080"))
    secret = os.environ.get("TTMA_WEBHOOK_SECRET") or "dev_" + secrets.token_hex(24)
    emulators = build_emulators(PROJECT)
    served = None
    try:
        emulators.start(STATE_DIR / "logs")
        os.environ.update(emulators.env)
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(PROJECT, TOPIC))
        subscriber = pubsub_v1.SubscriberClient()
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "ttma-call-events-inspect"),
            topic=publisher.topic_path(PROJECT, TOPIC),
        )
        env = {**emulators.env, "TTMA_WEBHOOK_SECRET": secret, "CALL_EVENTS_TOPIC": TOPIC}
        served = start_function("ingest", env, STATE_DIR / "logs" / "ingest.log", port=port)
    except EmulatorError as error:
        print(f"error: {error}", file=sys.stderr)
        emulators.stop()
        return 1
    print(
        f"ingest listening on {served.url} (logs: {served.log_path})\n"
        f"emulators: {' '.join(f'{k}={v}' for k, v in emulators.env.items())}\n\n"
        "Send a signed sample delivery:\n"
        f"  TTMA_WEBHOOK_SECRET={secret} .venv/bin/ttma-relay send {served.url}\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while served.process is not None and served.process.poll() is None:
            time.sleep(0.5)
        print("ingest exited; see its log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        served.stop()
        emulators.stop()


if __name__ == "__main__":
    raise SystemExit(main())
