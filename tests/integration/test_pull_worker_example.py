"""examples/pull_worker/worker.py against the Pub/Sub emulator: at-least-once, handled once.

The worker is documentation (docs/consumers.md); this keeps it true: it receives the product's
messages (published through ``CallEventPublisher`` with ``message_attributes``), handles each
call once although a copy of one is published again, and a handler failure is redelivered and
then handled, not lost.
"""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest

from tests.support.paths import REPO_ROOT
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.contract.messages import message_attributes, reconcile_envelope

pytestmark = pytest.mark.emulator
ROOT = REPO_ROOT
DATA = ROOT / "tests" / "data" / "call_ended.json"


def _worker_module():
    spec = importlib.util.spec_from_file_location(
        "pull_worker_example", ROOT / "examples" / "pull_worker" / "worker.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_handles_every_call_once_and_retries_a_failure(
    emulators, publisher_client, subscriber_client, unique
):
    worker = _worker_module()
    project = emulators["GOOGLE_CLOUD_PROJECT"]
    topic = publisher_client.topic_path(project, f"worker-{unique}")
    subscription = subscriber_client.subscription_path(project, f"worker-{unique}")
    publisher_client.create_topic(name=topic)
    subscriber_client.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)

    webhook = DATA.read_bytes()
    call = json.loads(webhook)["data"]
    others = [dict(call, id=f"v3:worker-{n}") for n in range(3)]
    publisher = CallEventPublisher(CallEventPublisher.new_client(), topic)
    messages = [(webhook, "webhook"), (webhook, "webhook")]  # a duplicate delivery
    messages += [(reconcile_envelope(other), "reconcile") for other in others]
    for data, source in messages:
        publisher.publish(data, message_attributes(json.loads(data), source))

    handled: list[tuple[str, str]] = []
    failed_once: set[str] = set()
    done = threading.Event()
    lock = threading.Lock()

    def handler(call: dict, attributes: dict[str, str]) -> None:
        with lock:
            if call["id"] == "v3:worker-1" and call["id"] not in failed_once:
                failed_once.add(call["id"])
                raise RuntimeError("the first attempt fails")
            handled.append((call["id"], attributes["source"]))
            if len(handled) >= 4:
                done.set()

    thread = threading.Thread(
        target=worker.run, args=(subscription, handler),
        kwargs={"client": subscriber_client, "timeout": 8.0}, daemon=True,
    )  # fmt: skip
    thread.start()
    assert done.wait(30), f"handled only {handled}"
    thread.join(30)
    assert sorted(handled) == sorted(
        [(call["id"], "webhook")] + [(other["id"], "reconcile") for other in others]
    )
    assert failed_once == {"v3:worker-1"}
