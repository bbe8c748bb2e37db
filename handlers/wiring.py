"""The real, thread-safe clients each function needs, built once per instance, lazily.

Settings are validated at start-up (``validate_settings_for``, called by ``main.py`` for the
function the instance serves), so a misconfigured deployment fails to start with a clear
``SettingsError`` instead of failing its first request. Clients are built on first use and
shared by gunicorn's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from google.cloud import firestore, storage

from handlers.ingest import IngestDeps
from handlers.reconcile import ReconcileDeps
from handlers.subscriber import ArchiveDeps
from ttma_relay.adapters.archive_store import ArchiveStore
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.deliveries import (
    LEASE_MARGIN_SECONDS,
    DeliveryClaims,
)
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.adapters.ttma_api import TtmaClient
from ttma_relay.functions import BY_NAME
from ttma_relay.reconcile import build_reconciler
from ttma_relay.settings import (
    ArchiveSettings,
    GoogleSettings,
    IngestSettings,
    ReconcileSettings,
)

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


def call_event_publisher(google: GoogleSettings, topic: str) -> CallEventPublisher:
    client = CallEventPublisher.low_latency_client()
    return CallEventPublisher(client, client.topic_path(google.project, topic))


def ingest_deps() -> IngestDeps:
    def build() -> IngestDeps:
        settings = IngestSettings.from_env()
        return IngestDeps(
            settings=settings,
            claims=DeliveryClaims(
                firestore_client(settings.google),
                settings.deliveries_collection,
                ttl_days=settings.delivery_ttl_days,
                lease_seconds=settings.budget_seconds + LEASE_MARGIN_SECONDS,
            ),
            publisher=call_event_publisher(settings.google, settings.call_events_topic),
        )

    return _once("ingest", build)


def archive_deps() -> ArchiveDeps:
    """Clients of ``archive_transcript`` and ``archive_recording`` (one set per instance)."""

    def build() -> ArchiveDeps:
        settings = ArchiveSettings.from_env()
        storage_client = storage.Client(project=settings.google.project)
        return ArchiveDeps(
            settings=settings,
            store=ArchiveStore(storage_client.bucket(settings.archive_bucket)),
            index=CallIndex(firestore_client(settings.google), settings.calls_collection),
            api=TtmaClient(settings.api_base_url, settings.api_key),
        )

    return _once("archive", build)


def reconcile_deps() -> ReconcileDeps:
    """Clients of ``reconcile``: the vendor API, the delivery records and the topic."""

    def build() -> ReconcileDeps:
        settings = ReconcileSettings.from_env()
        reconciler = build_reconciler(
            firestore_client(settings.google),
            settings.deliveries_collection,
            api=TtmaClient(settings.api_base_url, settings.api_key),
            publisher=call_event_publisher(settings.google, settings.call_events_topic),
            grace=timedelta(seconds=settings.grace_seconds),
            ttl_days=settings.delivery_ttl_days,
        )
        return ReconcileDeps(settings=settings, reconciler=reconciler)

    return _once("reconcile", build)


def validate_settings_for(target: str | None) -> None:
    """Validate the settings of the function this instance serves, at start-up.

    Cloud Functions and functions-framework set ``FUNCTION_TARGET``; one source serves all four
    functions, so only the target's own settings are checked. A ``SettingsError`` here stops the
    instance from starting, with the variable's name in the message.
    """
    spec = BY_NAME.get(target or "")
    if spec is not None:
        spec.settings.from_env()
