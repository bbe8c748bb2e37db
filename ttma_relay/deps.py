"""The real, thread-safe clients each function needs, built once per instance, lazily.

Settings are validated on first use, so a misconfigured deployment fails its first request
with a clear ``SettingsError`` in the logs (and at import time when ``TTMA_EAGER_SETTINGS``
is set, which the local stack does). Clients are shared by gunicorn's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from google.cloud import firestore

from handlers.ingest import IngestDeps
from ttma_relay.call_events import CallEventPublisher
from ttma_relay.delivery_claims import DeliveryClaims
from ttma_relay.settings import GoogleSettings, IngestSettings

T = TypeVar("T")
_lock = threading.Lock()
_cache: dict[str, object] = {}


def _once(name: str, build: Callable[[], T]) -> T:
    value = _cache.get(name)
    if value is None:
        with _lock:
            value = _cache.get(name)
            if value is None:
                value = build()
                _cache[name] = value
    return value  # type: ignore[return-value]


def reset() -> None:
    """Forget every built client (tests that change the environment)."""
    with _lock:
        _cache.clear()


def firestore_client(google: GoogleSettings) -> firestore.Client:
    return firestore.Client(project=google.project, database=google.firestore_database)


def ingest_deps() -> IngestDeps:
    def build() -> IngestDeps:
        settings = IngestSettings.from_env()
        publisher_client = CallEventPublisher.low_latency_client()
        return IngestDeps(
            settings=settings,
            claims=DeliveryClaims(
                firestore_client(settings.google),
                settings.deliveries_collection,
                ttl_days=settings.delivery_ttl_days,
            ),
            publisher=CallEventPublisher(
                publisher_client,
                publisher_client.topic_path(settings.google.project, settings.call_events_topic),
            ),
        )

    return _once("ingest", build)
