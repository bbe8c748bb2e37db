"""Builders for the archiver tests: Pub/Sub pushes, CloudEvents, polling, an out-of-process
sandbox. The fixtures are in ``tests/fixtures/archive.py``.

Messages are built the way ingest publishes them (``data`` = the envelope bytes, attributes
from ``contract.messages.message_attributes``); pushes are the Pub/Sub push body, which
functions-framework turns into a CloudEvent exactly as on Google Cloud.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from cloudevents.http import CloudEvent

from devstack.emulators import stop_process_group
from tests.support.paths import REPO_ROOT
from tests.support.payloads import encode
from ttma_relay.contract.call_event import PUBSUB_EVENT_TYPE
from ttma_relay.contract.call_keys import object_prefix
from ttma_relay.contract.messages import message_attributes
from ttma_relay.contract.timestamps import iso_millis
from ttma_sandbox.api_keys import API_KEYS_ENV

ROOT = REPO_ROOT
TOPIC_SOURCE = "//pubsub.googleapis.com/projects/ttma-relay-test/topics/ttma-call-events"


def envelope_for(call: Mapping[str, Any], delivery_id: str | None = None) -> dict[str, Any]:
    """A ``call.ended`` delivery envelope for a call object (a sandbox call, say)."""
    return {
        "event": "call.ended",
        "deliveryId": delivery_id or str(uuid.uuid4()),
        "timestamp": iso_millis(datetime.now(UTC)),
        "data": dict(call),
    }


def push_body(
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a Pub/Sub push request."""
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": dict(attributes or {}),
            "messageId": message_id or str(uuid.uuid4().int)[:16],
            "publishTime": iso_millis(datetime.now(UTC)),
        },
        "subscription": "projects/ttma-relay-test/subscriptions/archive",
    }


def push_for(envelope: Mapping[str, Any], *, message_id: str | None = None) -> dict[str, Any]:
    return push_body(
        encode(envelope), message_attributes(envelope, "webhook"), message_id=message_id
    )


def cloud_event(body: Mapping[str, Any], *, event_type: str = PUBSUB_EVENT_TYPE) -> CloudEvent:
    """The CloudEvent functions-framework makes of a push body."""
    return CloudEvent(
        {"type": event_type, "source": TOPIC_SOURCE, "id": body["message"]["messageId"]},
        {"message": body["message"], "subscription": body["subscription"]},
    )


def binary_headers(message_id: str, event_type: str = PUBSUB_EVENT_TYPE) -> dict[str, str]:
    """Headers of a binary-mode CloudEvent request (Eventarc style)."""
    return {
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": event_type,
        "ce-source": TOPIC_SOURCE,
        "Content-Type": "application/json",
    }


def prefix_of(envelope: Mapping[str, Any]) -> str:
    return object_prefix(envelope["data"], envelope.get("timestamp"))


def object_names(bucket: Any, prefix: str = "") -> set[str]:
    return {blob.name for blob in bucket.client.list_blobs(bucket.name, prefix=prefix)}


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s; last value: {value!r}")


class SandboxProcess:
    """The sandbox in a process of its own (``python -m ttma_sandbox``), driven through
    its control API: for measurements that must not count the sandbox's own allocations."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, api_key: str) -> None:
        self.process = process
        self.url = url
        self.api_key = api_key

    def simulate_call(self, **options: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox/calls", json=options, timeout=10)
        response.raise_for_status()
        return response.json()["data"][0]

    def recording_digest(self, call_id: str) -> dict[str, Any]:
        path = f"/_sandbox/calls/{quote(call_id, safe='')}/recording-digest"
        response = httpx.get(self.url + path, timeout=60)
        response.raise_for_status()
        return response.json()


@contextlib.contextmanager
def sandbox_process() -> Iterator[SandboxProcess]:
    api_key = "mbn_live_" + uuid.uuid4().hex + uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "ttma_sandbox", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, API_KEYS_ENV: api_key},  # not on the command line (ps shows those)
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline() or b"{}")
        if "url" not in ready:
            raise RuntimeError("the sandbox process did not start")
        yield SandboxProcess(process, ready["url"], api_key)
    finally:
        stop_process_group(process.pid)
        process.wait(timeout=10)
