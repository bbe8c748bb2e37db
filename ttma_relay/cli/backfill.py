"""``ttma-relay backfill``: reconcile's code over an explicit window.

The same decisions as the scheduled ``reconcile`` (``ttma_relay.reconcile``): every call of
the window whose delivery records say it was never delivered is published once, as
``reconcile:<callId>``; dead claims are taken over; calls inside the grace period are left to
their webhook. The reconcile checkpoint is neither read nor moved.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ttma_relay.cli.calls import When
from ttma_relay.cli.common import (
    EXIT_REFUSED,
    check_emulator,
    database_option,
    fail,
    google_errors,
    progress,
    project_option,
    require_google_credentials,
)
from ttma_relay.settings import DEFAULT_API_BASE_URL, DEFAULT_RECONCILE_GRACE_SECONDS


@click.command("backfill", short_help="Publish the calls of a window no delivery brought.")
@click.option("--after", "after", type=When(), required=True,
              help="Calls that started after: YYYY-MM-DD, ISO time or an age (7d).")  # fmt: skip
@click.option("--before", "before", type=When(end_of_day=True),
              help="…and before (a date includes that whole day). Default: now.")  # fmt: skip
@click.option("--grace-seconds", type=click.IntRange(0, 86400), envvar="RECONCILE_GRACE_SECONDS",
              default=DEFAULT_RECONCILE_GRACE_SECONDS, show_default=True, show_envvar=True,
              help="Leave calls that ended less than this long ago to their webhook.")  # fmt: skip
@click.option("--max-calls", type=click.IntRange(1, 1_000_000), default=100_000,
              show_default=True, help="Stop after publishing this many (exit 1).")  # fmt: skip
@click.option("--topic", envvar="CALL_EVENTS_TOPIC", default="ttma-call-events",
              show_default=True, show_envvar=True, help="Topic id of the call events.")  # fmt: skip
@click.option("--deliveries-collection", envvar="DELIVERIES_COLLECTION",
              default="ttma_deliveries", show_default=True, show_envvar=True,
              help="Firestore collection of the delivery records.")  # fmt: skip
@click.option("--api-key", envvar="TTMA_API_KEY", required=True, show_envvar=True,
              help="TTMA API key with voice:read.")  # fmt: skip
@click.option("--api-base-url", envvar="TTMA_API_BASE_URL", default=DEFAULT_API_BASE_URL,
              show_default=True, show_envvar=True)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@project_option
@database_option
def backfill_command(
    after: datetime,
    before: datetime | None,
    grace_seconds: int,
    max_calls: int,
    topic: str,
    deliveries_collection: str,
    api_key: str,
    api_base_url: str,
    as_json: bool,
    project: str,
    database: str,
) -> None:
    """Publish every call of a window that no delivery brought (reconcile over --after/--before).

    Prints the counts: listed, already delivered, in flight, too recent (inside the grace
    period), taken over (a dead request's claim), published, failed. Exit code 0 when the
    whole window was decided without failure, 1 when something failed or --max-calls stopped
    it (run it again: it publishes nothing twice), 2 when a backend is unreachable.
    """
    end = before or datetime.now(UTC)
    if after >= end:
        raise click.UsageError("--after must be before --before")
    check_emulator("PUBSUB_EMULATOR_HOST", "Pub/Sub")
    check_emulator("FIRESTORE_EMULATOR_HOST", "Firestore")
    require_google_credentials("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
    reconciler = build_reconciler(project, database, topic, deliveries_collection, api_key,
                             api_base_url, grace_seconds)  # fmt: skip
    from ttma_relay.reconcile import Budget

    with (
        google_errors("backfill"),
        progress(
            total=max(1, int((end - after).total_seconds())), desc="backfill", unit="s"
        ) as bar,
    ):
        report = reconciler.run_window(
            after, end, budget=Budget(seconds=float("inf"), max_calls=max_calls),
            checkpoint=False,
            on_slice=lambda upto, _: bar.update(int((upto - after).total_seconds()) - bar.n),
        )  # fmt: skip
    summary: dict[str, Any] = report.as_json()
    summary.pop("watermark", None)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for name in ("listed", "alreadyDelivered", "inFlight", "tooRecent", "takenOver",
                     "published", "failed"):  # fmt: skip
            click.echo(f"{name:<17} {summary[name]}")
    for failure in report.failures[:20]:
        click.echo(f"failed: {failure}", err=True)
    if report.failed or not report.complete:
        what = "failures" if report.failed else f"--max-calls {max_calls} reached"
        fail(f"backfill incomplete ({what}); run it again: nothing is published twice",
             EXIT_REFUSED)  # fmt: skip


def build_reconciler(project: str, database: str, topic: str, collection: str, api_key: str,
                base_url: str, grace_seconds: int) -> Any:  # fmt: skip
    from google.cloud import firestore

    from ttma_relay.adapters.publisher import CallEventPublisher
    from ttma_relay.adapters.ttma_api import TtmaClient
    from ttma_relay.reconcile import build_reconciler

    publisher_client = CallEventPublisher.new_client()
    return build_reconciler(
        firestore.Client(project=project, database=database),
        collection,
        api=TtmaClient(base_url.rstrip("/"), api_key),
        publisher=CallEventPublisher(publisher_client, publisher_client.topic_path(project, topic)),
        grace=timedelta(seconds=grace_seconds),
    )
