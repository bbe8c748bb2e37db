"""The bare functions the benchmarks serve beside the project's own, with functions-framework
(``--source bench/variants.py``), configured by the environment.

* ``floor``: answers 200 and does nothing else (the HTTP floor).
* ``chain``: the three round trips of a delivery with the project's clients and nothing of the
  project (the chain floor): Firestore ``create``, a publish through the client's batcher (one
  message per batch, ``future.result()``), the conditional update.
* ``sample``: Google's sample pattern: dedup in a Firestore transaction (begin, read, commit),
  a publisher with default batching, ``future.result()``.
* ``import_floor``: imports functions-framework and the client libraries named in
  ``BENCH_CLIENTS`` (comma-separated: firestore, pubsub, storage, httpx), builds and warms the
  clients after gunicorn forks (as the project does), logs ``floor warmed``, answers 200 (the
  cold-start floor).

Clients are built after the fork (gRPC channels must not cross it), once, on first use.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import flask
import functions_framework

_CLIENTS = [name for name in os.environ.get("BENCH_CLIENTS", "").split(",") if name]
_MODULES = {
    "firestore": "google.cloud.firestore",
    "pubsub": "google.cloud.pubsub_v1",
    "storage": "google.cloud.storage",
    "httpx": "httpx",
}
for _name in _CLIENTS:  # the import floor pays these at import, as main.py does
    importlib.import_module(_MODULES[_name])

PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", "ttma-bench")
TOPIC = os.environ.get("CALL_EVENTS_TOPIC", "bench")
COLLECTION = os.environ.get("DELIVERIES_COLLECTION", "bench-deliveries")
_lock = threading.Lock()
_built: dict[str, Any] = {}


def _clients(batching: str) -> tuple[Any, Any, str]:
    with _lock:
        if batching not in _built:
            from google.cloud import firestore, pubsub_v1

            if batching == "one_message":
                publisher = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001)
                )
            else:
                publisher = pubsub_v1.PublisherClient()
            _built[batching] = (
                firestore.Client(project=PROJECT),
                publisher,
                publisher.topic_path(PROJECT, TOPIC),
            )
    return _built[batching]


@functions_framework.http
def floor(request: flask.Request) -> tuple[str, int]:
    request.get_data()
    return "", 200


@functions_framework.http
def chain(request: flask.Request) -> tuple[str, int]:
    db, publisher, topic = _clients("one_message")
    data = request.get_data()
    delivery_id = request.headers["X-TTMA-Delivery-Id"]
    reference = db.collection(COLLECTION).document(delivery_id)
    created = reference.create({"state": "claimed", "claimedAt": datetime.now(UTC)}, timeout=10)
    message_id = publisher.publish(topic, data, deliveryId=delivery_id).result(timeout=10)
    reference.update(
        {"state": "published", "messageId": message_id},
        option=db.write_option(last_update_time=created.update_time),
        timeout=10,
    )
    return json.dumps({"status": "accepted"}), 200


@functions_framework.http
def sample(request: flask.Request) -> tuple[str, int]:
    from google.cloud import firestore

    db, publisher, topic = _clients("default")
    data = request.get_data()
    delivery_id = request.headers["X-TTMA-Delivery-Id"]
    reference = db.collection(COLLECTION).document(delivery_id)

    @firestore.transactional
    def claim(transaction: Any) -> bool:
        if reference.get(transaction=transaction).exists:
            return False
        transaction.set(reference, {"state": "received", "receivedAt": datetime.now(UTC)})
        return True

    if not claim(db.transaction()):
        return json.dumps({"status": "duplicate"}), 200
    publisher.publish(topic, data, deliveryId=delivery_id).result()
    return json.dumps({"status": "accepted"}), 200


def _warm_floor() -> None:
    started = time.perf_counter()
    for name in _CLIENTS:
        if name == "firestore":
            from google.cloud import firestore

            firestore.Client(project=PROJECT).collection(COLLECTION).document("_warm-up").get(
                timeout=5
            )
        elif name == "pubsub":
            import grpc
            from google.cloud import pubsub_v1

            client = pubsub_v1.PublisherClient()
            grpc.channel_ready_future(client.api.transport.grpc_channel).result(timeout=5)
        elif name == "storage":
            from google.cloud import storage

            storage.Client(project=PROJECT).bucket("bench-warm").get_blob("_warm-up", timeout=5)
        elif name == "httpx":
            import httpx

            httpx.Client(timeout=5)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    print(json.dumps({"message": "floor warmed", "warmMs": elapsed}), file=sys.stderr, flush=True)


if os.environ.get("FUNCTION_TARGET") == "import_floor":
    os.register_at_fork(
        after_in_child=lambda: threading.Thread(target=_warm_floor, daemon=True).start()
    )


@functions_framework.http
def import_floor(request: flask.Request) -> tuple[str, int]:
    request.get_data()
    return "", 200
