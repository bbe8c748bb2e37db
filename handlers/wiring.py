"""The real, thread-safe clients each function needs, built once per instance, lazily.

At start-up ``prepare`` (called by ``main.py`` for the function the instance serves) validates
that function's settings, so a misconfigured deployment fails to start with a clear
``SettingsError`` instead of failing its first request, and imports its handler and nothing
else. Clients are built on the instance's first request (in the worker: gRPC channels must not
be created before gunicorn forks) and shared by gunicorn's threads. In a served worker they are
then warmed (``warm_in_worker``): one request's own calls per client, none of which writes or
delivers anything (a read of, and an update refused for, a document that never exists; a bucket
lookup of an object that never exists; the Pub/Sub channel connected and a Publish of no
message, refused), logged as ``<function> warmed`` with each call's milliseconds. The local
stack reports a function healthy only once that line is in its log.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from ttma_relay.functions import BY_NAME
from ttma_relay.logs import log_event

if TYPE_CHECKING:  # each builder imports what it builds: a function loads only its own clients
    from google.cloud import firestore

    from handlers.ingest import IngestDeps
    from handlers.reconcile import ReconcileDeps
    from handlers.subscriber import ArchiveDeps
    from ttma_relay.adapters.publisher import CallEventPublisher
    from ttma_relay.settings import GoogleSettings, IngestSettings, ReconcileSettings

T = TypeVar("T")
WARM_UP_DOCUMENT = "_warm-up"  # never written: reading it and a refused update of it write nothing
WARM_UP_TIMEOUT_SECONDS = 5.0
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


# What warming each builder's clients takes (set when they are built; ``warm_function`` runs it).
_WARM_STEPS: dict[str, dict[str, Callable[[], object]]] = {}


def warm(function: str, steps: dict[str, Callable[[], object]], *, retry_for: float = 0.0) -> None:
    """Run each warm-up call, again every 0.5 s for up to ``retry_for`` s while it fails (the
    local stack starts the functions beside the emulators); log their times once. A failure
    left is logged (its class name), never raised: the request that follows retries the same
    call and answers for itself."""
    deadline = time.monotonic() + retry_for
    fields: dict[str, object] = {}
    failures: dict[str, str] = {}
    for name, step in steps.items():
        started = time.perf_counter()
        while True:
            try:
                step()
                failures.pop(name, None)
                break
            except Exception as error:
                failures[name] = type(error).__name__
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
        fields[f"{name}Ms"] = round((time.perf_counter() - started) * 1000, 1)
    log_event("WARNING" if failures else "INFO", f"{function} warmed", function=function,
              outcome="warmed", **fields, failures=failures or None)  # fmt: skip


def warm_function(target: str, *, retry_for: float = 0.0) -> None:
    """Build ``target``'s clients (once per instance) and warm them."""
    build = BUILDERS[target]
    build()
    warm(target, _WARM_STEPS.get(build.__name__, {}), retry_for=retry_for)


def _read_and_commit_nothing(client: firestore.Client, collection: str) -> Callable[[], object]:
    """A read of a document that never exists, then a commit that writes nothing: an update of
    that document, which Firestore refuses (``NotFound``). The first request's own create and
    conditional update then find the commit path warm (measured: BENCHMARKS.md)."""
    from google.api_core import exceptions as gexc

    document = client.collection(collection).document(WARM_UP_DOCUMENT)

    def step() -> None:
        document.get(retry=None, timeout=WARM_UP_TIMEOUT_SECONDS)
        try:
            document.update({"warmUp": True}, retry=None, timeout=WARM_UP_TIMEOUT_SECONDS)
        except gexc.NotFound:
            return
        raise AssertionError(f"{collection}/{WARM_UP_DOCUMENT} exists; it must never be written")

    return step


def reset() -> None:
    """Forget every built client (tests that change the environment)."""
    with _lock:
        _cache.clear()


def firestore_client(google: GoogleSettings) -> firestore.Client:
    from google.cloud import firestore

    return firestore.Client(project=google.project, database=google.firestore_database)


def call_event_publisher(google: GoogleSettings, topic: str) -> CallEventPublisher:
    from ttma_relay.adapters.publisher import CallEventPublisher

    client = CallEventPublisher.new_client()
    return CallEventPublisher(client, client.topic_path(google.project, topic))


def _deliveries_and_topic(
    function: str, settings: IngestSettings | ReconcileSettings
) -> tuple[firestore.Client, CallEventPublisher]:
    """The Firestore client and the publisher of ingest and reconcile, warmed."""
    client = firestore_client(settings.google)
    publisher = call_event_publisher(settings.google, settings.call_events_topic)
    _WARM_STEPS[f"{function}_deps"] = {
        "firestore": _read_and_commit_nothing(client, settings.deliveries_collection),
        "pubsub": lambda: publisher.warm(WARM_UP_TIMEOUT_SECONDS),
    }
    return client, publisher


def ingest_deps() -> IngestDeps:
    def build() -> IngestDeps:
        from handlers.ingest import IngestDeps
        from ttma_relay.adapters.deliveries import LEASE_MARGIN_SECONDS, DeliveryClaims
        from ttma_relay.settings import IngestSettings

        settings = IngestSettings.from_env()
        client, publisher = _deliveries_and_topic("ingest", settings)
        return IngestDeps(
            settings=settings,
            claims=DeliveryClaims(
                client,
                settings.deliveries_collection,
                ttl_days=settings.delivery_ttl_days,
                lease_seconds=settings.budget_seconds + LEASE_MARGIN_SECONDS,
            ),
            publisher=publisher,
        )

    return _once("ingest", build)


# google-cloud-storage (3.x) looks up a bucket's metadata (``storage.buckets.get``) in a
# background thread on a client's first object call, for its OpenTelemetry span attributes,
# traced or not. The archivers hold object roles only (terraform/iam.tf): on Google Cloud that
# lookup is refused (403, in the audit log) once per instance. The library's switch turns it off;
# an environment that sets the variable itself keeps its value.
STORAGE_BUCKET_LOOKUP_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"


def archive_deps() -> ArchiveDeps:
    """Clients of ``archive_transcript`` and ``archive_recording`` (one set per instance)."""

    def build() -> ArchiveDeps:
        from google.cloud import storage

        from handlers.subscriber import ArchiveDeps
        from ttma_relay.adapters.archive_store import ArchiveStore
        from ttma_relay.adapters.call_index import CallIndex
        from ttma_relay.adapters.deliveries import CallTombstones
        from ttma_relay.adapters.ttma_api import TtmaClient
        from ttma_relay.settings import ArchiveSettings

        settings = ArchiveSettings.from_env()
        os.environ.setdefault(STORAGE_BUCKET_LOOKUP_SWITCH, "true")  # no bucket permission held
        storage_client = storage.Client(project=settings.google.project)
        bucket = storage_client.bucket(settings.archive_bucket)
        client = firestore_client(settings.google)
        _WARM_STEPS["archive_deps"] = {
            "firestore": _read_and_commit_nothing(client, settings.calls_collection),
            "storage": lambda: bucket.get_blob(WARM_UP_DOCUMENT, timeout=WARM_UP_TIMEOUT_SECONDS),
        }
        return ArchiveDeps(
            settings=settings,
            store=ArchiveStore(bucket),
            index=CallIndex(client, settings.calls_collection),
            api=TtmaClient(settings.api_base_url, settings.api_key),
            tombstones=CallTombstones(client, settings.deliveries_collection),
        )

    return _once("archive", build)


def reconcile_deps() -> ReconcileDeps:
    """Clients of ``reconcile``: the vendor API, the delivery records and the topic."""

    def build() -> ReconcileDeps:
        from handlers.reconcile import ReconcileDeps
        from ttma_relay.adapters.ttma_api import TtmaClient
        from ttma_relay.reconcile import build_reconciler
        from ttma_relay.settings import ReconcileSettings

        settings = ReconcileSettings.from_env()
        client, publisher = _deliveries_and_topic("reconcile", settings)
        reconciler = build_reconciler(
            client,
            settings.deliveries_collection,
            api=TtmaClient(settings.api_base_url, settings.api_key),
            publisher=publisher,
            grace=timedelta(seconds=settings.grace_seconds),
            ttl_days=settings.delivery_ttl_days,
        )
        return ReconcileDeps(settings=settings, reconciler=reconciler)

    return _once("reconcile", build)


# Each function's deps builder (a test holds the keys to ttma_relay.functions).
BUILDERS: dict[str, Callable[[], object]] = {
    "ingest": ingest_deps,
    "archive_transcript": archive_deps,
    "archive_recording": archive_deps,
    "reconcile": reconcile_deps,
}


WORKER_WARM_UP_SECONDS = 60.0  # retried this long: the stack's emulators may still be starting


def warm_in_worker(target: str | None) -> None:
    """Build and warm ``target``'s clients in each process forked from this one, at once.

    functions-framework imports main.py in gunicorn's master, which then forks the worker that
    serves: gRPC channels must not exist before a fork, so the clients are built after it, in a
    thread of the new worker (again in every worker gunicorn respawns). The warm-up calls run
    after the build, outside its lock: a request meanwhile uses the clients at once. Without a
    fork (tests, ``--debug``) the clients are built on the first request and not warmed.
    """
    if target not in BUILDERS:
        return

    def warm_quietly() -> None:
        try:
            warm_function(target, retry_for=WORKER_WARM_UP_SECONDS)
        except Exception as error:  # the first request builds again and answers for itself
            log_event("WARNING", f"{target} warm-up failed", function=target,
                      outcome="warm_up_failed", errorType=type(error).__name__)  # fmt: skip

    os.register_at_fork(
        after_in_child=lambda: threading.Thread(
            target=warm_quietly, name="warm-up", daemon=True
        ).start()
    )


def import_handler(target: str) -> object:
    """The module of ``target``'s handler (``handlers.<target>``), imported on first use: an
    instance loads its own function's code and clients, not the other functions'."""
    return importlib.import_module(f"handlers.{BY_NAME[target].name}")


def prepare(target: str | None) -> None:
    """What ``main.py`` does at start-up, for the function this instance serves (Cloud
    Functions and functions-framework set ``FUNCTION_TARGET``): validate its settings, import
    its handler and client libraries (before gunicorn forks, so every worker has them), and
    warm its clients in each worker; a push subscriber's app also acks a request that is no
    Pub/Sub push (``answer_not_a_push_in``). Another target, or none, does nothing."""
    if target not in BY_NAME:
        return
    validate_settings_for(target)
    import_handler(target)
    answer_not_a_push_in(target)
    warm_in_worker(target)


def answer_not_a_push_in(target: str) -> None:
    """For a Pub/Sub push subscriber (the archivers), register ``answer_not_a_push`` on the
    app functions-framework is loading ``main.py`` into (its app context is current while it
    does): a request that is no push is acked as poison, not answered 400 or 500 by the
    framework. Outside an app (``import main`` in a test) there is nothing to register on."""
    import flask

    if BY_NAME[target].trigger != "push" or not flask.has_app_context():
        return
    from handlers.subscriber import answer_not_a_push

    flask.current_app.register_error_handler(Exception, answer_not_a_push(target))


def validate_settings_for(target: str | None) -> None:
    """Validate the settings of the function this instance serves, at start-up.

    Cloud Functions and functions-framework set ``FUNCTION_TARGET``; one source serves all four
    functions, so only the target's own settings are checked. A ``SettingsError`` here stops the
    instance from starting, with the variable's name in the message.
    """
    spec = BY_NAME.get(target or "")
    if spec is not None:
        spec.settings.from_env()
