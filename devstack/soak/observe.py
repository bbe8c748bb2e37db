"""What ``make soak`` looks at, from outside the pipeline: its own subscription on the topic,
the archive bucket (with a watcher that remembers each object's first generation), the index,
the vendor's API and the dead-letter hold subscription. Delivery records are read only to
explain a loss (``explain``) and to know when the ingest worker holds claims.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.soak.report import StoredObject, TopicEvent
from ttma_relay.contract.call_keys import call_key

DELIVERIES_COLLECTION = "ttma_deliveries"


class EventTap:
    """A pull subscription of the soak's own on the call-events topic: a consumer's view."""

    def __init__(self, project: str, topic: str, name: str) -> None:
        from google.cloud import pubsub_v1

        self._subscriber = pubsub_v1.SubscriberClient()
        self.path = self._subscriber.subscription_path(project, name)
        self._subscriber.create_subscription(request={
            "name": self.path, "topic": f"projects/{project}/topics/{topic}",
            "ack_deadline_seconds": 60,
        })  # fmt: skip
        self.events: dict[str, TopicEvent] = {}  # messageId → event

    def drain(self, *, rounds: int = 200) -> int:
        """Pull and ack what is waiting; returns how many messages came."""
        from google.api_core import exceptions as gexc

        got = 0
        for _ in range(rounds):
            try:
                response = self._subscriber.pull(
                    request={"subscription": self.path, "max_messages": 500},
                    timeout=3.0, retry=None,
                )  # fmt: skip
            except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                break
            if not response.received_messages:
                break
            for received in response.received_messages:
                message = received.message
                attributes = dict(message.attributes)
                self.events[message.message_id] = TopicEvent(
                    attributes.get("callId", ""), message.message_id,
                    attributes.get("deliveryId", ""), attributes.get("source", ""),
                )  # fmt: skip
            got += len(response.received_messages)
            self._subscriber.acknowledge(request={
                "subscription": self.path,
                "ack_ids": [r.ack_id for r in response.received_messages],
            })  # fmt: skip
        return got

    def call_ids(self) -> set[str]:
        return {event.call_id for event in self.events.values()}

    def close(self, *, delete: bool) -> None:
        if delete:
            with contextlib.suppress(Exception):
                self._subscriber.delete_subscription(request={"subscription": self.path},
                                                     timeout=5)  # fmt: skip
        self._subscriber.close()


class BucketWatch:
    """Lists the bucket every few seconds and keeps each object's first-seen generation."""

    def __init__(self, project: str, bucket: str, interval: float = 3.0) -> None:
        from google.cloud import storage

        self._client = storage.Client(project=project)
        self._bucket = bucket
        self._interval = interval
        self.first_generations: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-bucket-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def listing(self, timeout: float = 10.0) -> list[StoredObject]:
        blobs = self._client.list_blobs(self._bucket, prefix="calls/", timeout=timeout)
        found = [StoredObject(b.name, int(b.generation or 0), b.time_created) for b in blobs]
        for obj in found:
            self.first_generations.setdefault(obj.name, obj.generation)
        return found

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # storage paused: the next round sees it
                self.listing(timeout=3.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def index_records(db: Any, collection: str, call_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    references = {call_key(cid): cid for cid in call_ids}
    found: dict[str, dict[str, Any]] = {}
    chunk = 300
    keys = list(references)
    for start in range(0, len(keys), chunk):
        refs = [db.collection(collection).document(k) for k in keys[start : start + chunk]]
        for snapshot in db.get_all(refs, timeout=30):
            if snapshot.exists:
                found[references[snapshot.reference.id]] = snapshot.to_dict() or {}
    return found


def delivery_records(db: Any, call_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    ids = list(call_ids)
    found: dict[str, list[dict[str, Any]]] = {cid: [] for cid in ids}
    collection = db.collection(DELIVERIES_COLLECTION)
    for start in range(0, len(ids), 30):  # Firestore's "in" takes 30 values
        query = collection.where(filter=FieldFilter("callId", "in", ids[start : start + 30]))
        for snapshot in query.stream(timeout=10):
            data = snapshot.to_dict() or {}
            found.setdefault(str(data.get("callId")), []).append(data)
    return found


def claimed_count(db: Any, call_ids: Iterable[str]) -> int:
    records = delivery_records(db, call_ids)
    return sum(1 for rs in records.values() for r in rs if r.get("state") == "claimed")


def vendor_recordings(base_url: str, api_key: str) -> dict[str, bool]:
    """callId → recordingAvailable, as the vendor's list API says now."""
    from ttma_relay.adapters.ttma_api import TtmaClient

    after = datetime.now(UTC) - timedelta(hours=6)
    with TtmaClient(base_url, api_key) as api:
        return {c["id"]: bool(c.get("recordingAvailable")) for c in api.list_calls(after=after)}


def explain(delivery: dict[str, Any] | None, records: list[dict[str, Any]]) -> str:
    """One line: the sandbox's delivery outcome and answers, and the delivery records' states."""
    if delivery is None:
        sent = "webhook never sent"
    else:
        answers = [str(a.get("status") or a.get("error")) for a in delivery.get("attempts", [])]
        sent = f"webhook {delivery.get('outcome')} [{' '.join(answers) or 'no attempt'}]"
    states = [f"{r.get('deliveryId', '?')[:18]} {r.get('state')}" for r in records]
    return f"{sent}; delivery records: {', '.join(states) or 'none'}"
