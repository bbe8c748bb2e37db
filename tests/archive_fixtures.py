"""Fixtures of the archiver tests: a fresh bucket and index collection per test, the
archivers' environment for ``functions_framework.create_app``, and a storage emulator that
reports the object events it performs.

``tests/conftest.py`` imports them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.emulators import HOST, Emulator, fake_gcs_binary, free_port


@pytest.fixture(scope="session")
def storage_client(emulators: dict[str, str]):
    from google.cloud import storage

    return storage.Client(project=emulators["GOOGLE_CLOUD_PROJECT"])


@pytest.fixture
def archive_bucket(storage_client, unique: str):
    """A fresh, empty bucket for one test."""
    return storage_client.create_bucket(f"archive-{unique}")


@pytest.fixture
def calls_collection(unique: str) -> str:
    return f"calls_{unique}"


@pytest.fixture
def archive_env(
    emulators, sandbox, archive_bucket, calls_collection, monkeypatch
) -> Iterator[dict[str, str]]:
    """The archivers' environment (for ``create_app``), pointing at this test's resources."""
    from handlers import wiring

    env = {
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "ARCHIVE_BUCKET": archive_bucket.name,
        "CALLS_COLLECTION": calls_collection,
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_API_BASE_URL": sandbox.url,
        "RECORDING_WAIT_SECONDS": "600",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    wiring.reset()
    yield env
    wiring.reset()


# ------------------------------------------------------------- storage with object events
@dataclass
class StorageEvents:
    """A storage emulator of its own that reports every object event it performs
    (``OBJECT_FINALIZE``, ``OBJECT_DELETE``, ``OBJECT_ARCHIVE``, ``OBJECT_METADATA_UPDATE``)
    to a Pub/Sub emulator topic, as Cloud Storage notifications do.

    It shows what the storage service *did*, not what a client asked: an object created and
    then deleted again leaves no trace in a listing, but leaves its two events here.
    """

    client: Any
    subscriber: Any
    subscription: str
    delivered: set[str] = field(default_factory=set)

    def events(self, bucket: str, *, timeout: float = 20.0) -> list[tuple[str, str]]:
        """Every ``(eventType, objectId)`` in ``bucket`` so far: writes a sentinel object and
        reads events until the sentinel's own (the emulator publishes asynchronously)."""
        sentinel = f"zz-sentinel-{uuid.uuid4().hex}"
        self.client.bucket(bucket).blob(sentinel).upload_from_string(b"s")
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.subscriber.pull(
                subscription=self.subscription, max_messages=100, timeout=5
            )
            ids = [m.ack_id for m in response.received_messages]
            for received in response.received_messages:
                attributes = received.message.attributes
                if received.message.message_id in self.delivered:
                    continue  # Pub/Sub delivers at least once
                self.delivered.add(received.message.message_id)
                if attributes.get("bucketId") == bucket:
                    seen.append((attributes["eventType"], attributes["objectId"]))
            if ids:
                self.subscriber.acknowledge(subscription=self.subscription, ack_ids=ids)
            if ("OBJECT_FINALIZE", sentinel) in seen:
                return [event for event in seen if event[1] != sentinel]
            time.sleep(0.05)
        raise AssertionError(f"no event for the sentinel in {timeout} s; saw {seen}")


@pytest.fixture(scope="session")
def storage_events(
    emulators, publisher_client, subscriber_client, tmp_path_factory
) -> Iterator[StorageEvents]:
    from google.cloud import storage

    project = emulators["GOOGLE_CLOUD_PROJECT"]
    topic = publisher_client.topic_path(project, f"gcs-events-{uuid.uuid4().hex[:8]}")
    publisher_client.create_topic(name=topic)
    subscription = subscriber_client.subscription_path(
        project, f"gcs-events-{uuid.uuid4().hex[:8]}"
    )
    subscriber_client.create_subscription(name=subscription, topic=topic)
    port = free_port()
    server = Emulator(
        "storage-events",
        port,
        [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            HOST,
            "-port",
            str(port),
            "-external-url",
            f"http://{HOST}:{port}",
            "-log-level",
            "warn",
            "-event.pubsub-project-id",
            project,
            "-event.pubsub-topic",
            topic.split("/")[-1],
            "-event.list",
            "finalize,delete,archive,metadataUpdate",
        ],
        health_path="/storage/v1/b",
    )
    server.start(tmp_path_factory.mktemp("storage-events"))  # inherits PUBSUB_EMULATOR_HOST
    try:
        server.wait_healthy(30)
        client = storage.Client(
            project=project, client_options={"api_endpoint": f"http://{server.address}"}
        )
        yield StorageEvents(client, subscriber_client, subscription)
    finally:
        server.stop()


@pytest.fixture
def events_bucket(storage_events: StorageEvents, unique: str):
    """A fresh bucket on the storage emulator that reports object events."""
    return storage_events.client.create_bucket(f"events-{unique}")
