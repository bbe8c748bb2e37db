"""The four Cloud Functions, in one table: everything else about them derives from it.

``main.py`` defines one entry point per row (a test holds its names and decorators to the
table); ``handlers.wiring`` validates each row's settings and builds its clients;
``devstack`` serves each row with its signature type, its settings and, for subscribers, a push
subscription with the row's ack deadline; ``tests/integration/test_terraform_contract.py`` holds
``terraform/functions.tf`` and ``terraform/pubsub.tf`` to the table (entry points, environment,
ingress, timeouts, concurrency and threads, ack deadlines). Adding a fifth function starts here.

``touches`` names what a function's code may reach, as ``kind:thing``: ``firestore:deliveries``
(the delivery records, markers, checkpoint), ``firestore:calls`` (the index), ``pubsub:publish``
(the call-events topic), ``storage:archive`` (the bucket), ``vendor:api`` (the TTMA API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ttma_relay import settings

Trigger = Literal["webhook", "push", "scheduler"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the entry point in main.py, the key in terraform/functions.tf
    trigger: Trigger  # webhook: public HTTP; push: a Pub/Sub push subscription; scheduler
    settings: type[settings.IngestSettings | settings.ArchiveSettings | settings.ReconcileSettings]
    env: frozenset[str]  # every variable the settings read (Terraform sets exactly these)
    timeout_seconds: int  # the function's request timeout (Terraform's service_config)
    touches: frozenset[str]
    # Requests one instance serves at once: Cloud Run's max_instance_request_concurrency and
    # gunicorn's THREADS, in Terraform and in the local stack (BENCHMARKS.md: the sizing).
    concurrency: int
    ack_deadline_seconds: int | None = None  # push: the subscription's, = the request timeout

    @property
    def signature_type(self) -> Literal["http", "cloudevent"]:
        """functions-framework's ``--signature-type``: ``@functions_framework.http`` or
        ``.cloud_event`` in main.py."""
        return "cloudevent" if self.trigger == "push" else "http"

    @property
    def public(self) -> bool:
        """Reachable from the internet (the HMAC signature authenticates); the others are not."""
        return self.trigger == "webhook"


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        name="ingest",
        trigger="webhook",
        settings=settings.IngestSettings,
        env=settings.INGEST_ENV,
        timeout_seconds=60,
        touches=frozenset({"firestore:deliveries", "pubsub:publish"}),
        concurrency=20,
    ),
    FunctionSpec(
        name="archive_transcript",
        trigger="push",
        settings=settings.ArchiveSettings,
        env=settings.ARCHIVE_ENV,
        timeout_seconds=120,
        ack_deadline_seconds=120,
        touches=frozenset({"firestore:calls", "storage:archive", "vendor:api"}),
        concurrency=10,
    ),
    FunctionSpec(
        name="archive_recording",
        trigger="push",
        settings=settings.ArchiveSettings,
        env=settings.ARCHIVE_ENV,
        timeout_seconds=300,
        ack_deadline_seconds=300,
        touches=frozenset({"firestore:calls", "storage:archive", "vendor:api"}),
        concurrency=4,
    ),
    FunctionSpec(
        name="reconcile",
        trigger="scheduler",
        settings=settings.ReconcileSettings,
        env=settings.RECONCILE_ENV,
        timeout_seconds=540,
        touches=frozenset({"firestore:deliveries", "pubsub:publish", "vendor:api"}),
        concurrency=1,
    ),
)

BY_NAME: dict[str, FunctionSpec] = {spec.name: spec for spec in FUNCTIONS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
SUBSCRIBERS: tuple[str, ...] = tuple(spec.name for spec in FUNCTIONS if spec.trigger == "push")


def spec_of(name: str) -> FunctionSpec:
    """The row of ``name``; a ``KeyError`` that lists the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown function {name!r}; known: {', '.join(NAMES)}") from None
