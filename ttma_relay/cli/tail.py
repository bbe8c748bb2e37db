"""``ttma-relay tail``: print call events as they are published on the call-events topic.

It creates a pull subscription with a unique name (``ttma-relay-tail-<random>``), reads and
acknowledges from it, and deletes it on exit, Ctrl-C or SIGTERM. Should the process be killed
outright, the subscription expires by itself after a day without use (Pub/Sub's minimum).
A subscription only sees messages published after it was created: tail shows new events.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import click

from ttma_relay.cli.common import (
    EXIT_REFUSED,
    check_emulator,
    fail,
    google_errors,
    project_option,
    require_google_credentials,
)
from ttma_relay.contract.timestamps import iso_millis

SUBSCRIPTION_PREFIX = "ttma-relay-tail-"
PULL_WAIT_SECONDS = 2.0
EXPIRES_AFTER_SECONDS = 24 * 3600  # the smallest expiration Pub/Sub accepts
RETENTION_SECONDS = 600  # the smallest retention Pub/Sub accepts


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def event_line(message: Any) -> str:
    """``<publish time>  <callId>  <endedReason>  <source>  <deliveryId>``."""
    attributes = dict(message.attributes)
    published = message.publish_time
    moment = iso_millis(published)
    return "  ".join(
        [
            moment,
            attributes.get("callId") or "-",
            attributes.get("endedReason") or "-",
            attributes.get("source") or "-",
            attributes.get("deliveryId") or "-",
        ]
    )


def event_json(message: Any, *, with_data: bool) -> str:
    published = message.publish_time
    document: dict[str, Any] = {
        "messageId": message.message_id,
        "publishTime": published.isoformat().replace("+00:00", "Z"),
        "attributes": dict(message.attributes),
    }
    if with_data:
        try:
            document["data"] = json.loads(message.data)
        except ValueError:
            document["data"] = message.data.decode("utf-8", errors="replace")
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


@contextlib.contextmanager
def temporary_subscription(subscriber: Any, project: str, topic: str) -> Iterator[str]:
    """A pull subscription on ``topic`` that exists only inside the ``with`` block."""
    path = subscriber.subscription_path(project, SUBSCRIPTION_PREFIX + uuid.uuid4().hex[:12])
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": f"projects/{project}/topics/{topic}",
            "ack_deadline_seconds": 30,
            "message_retention_duration": {"seconds": RETENTION_SECONDS},
            "expiration_policy": {"ttl": {"seconds": EXPIRES_AFTER_SECONDS}},
        },
        timeout=30,
    )
    try:
        yield path
    finally:
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(request={"subscription": path}, timeout=30)


def pull_batch(subscriber: Any, path: str, wait: float) -> list[Any]:
    """Received messages (acknowledged), or [] when none came within ``wait`` seconds."""
    from google.api_core import exceptions as gexc

    try:
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 100}, timeout=wait, retry=None
        )
    except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
        return []
    received = list(response.received_messages)
    if received:
        subscriber.acknowledge(
            request={"subscription": path, "ack_ids": [m.ack_id for m in received]}
        )
    return sorted(received, key=lambda m: m.message.publish_time)


@click.command("tail", short_help="Stream call events from the topic as they arrive.")
@click.option(
    "--topic",
    envvar="CALL_EVENTS_TOPIC",
    default="ttma-call-events",
    show_default=True,
    show_envvar=True,
    help="Topic id of the call events.",
)
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many events.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Exit after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@click.option(
    "--data",
    "with_data",
    is_flag=True,
    help="With --json: include the message data (the call, transcript and numbers included).",
)
@project_option
def tail_command(
    topic: str,
    count: int | None,
    timeout: float | None,
    as_json: bool,
    with_data: bool,
    project: str,
) -> None:
    """Stream call events from the topic as they arrive, one line each:
    publish time, callId, endedReason, source, deliveryId.

    Runs until Ctrl-C, --count events or --timeout seconds. Exit code 0; 1 when --count
    events did not arrive before --timeout, or the topic does not exist; 2 unreachable.
    """
    if with_data and not as_json:
        raise click.UsageError("--data needs --json")
    check_emulator("PUBSUB_EMULATOR_HOST", "Pub/Sub")
    require_google_credentials("PUBSUB_EMULATOR_HOST")
    from google.cloud import pubsub_v1

    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    subscriber = pubsub_v1.SubscriberClient()
    try:
        with (
            google_errors(f"tailing topic {topic}"),
            temporary_subscription(subscriber, project, topic) as path,
        ):
            click.echo(
                f"listening on projects/{project}/topics/{topic} (temporary subscription "
                f"{path.rsplit('/', 1)[-1]}, removed on exit); Ctrl-C to stop",
                err=True,
            )
            while count is None or seen < count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                wait = PULL_WAIT_SECONDS if remaining is None else min(PULL_WAIT_SECONDS, remaining)
                for received in pull_batch(subscriber, path, max(wait, 0.1)):
                    if count is not None and seen >= count:
                        break
                    message = received.message
                    text = event_json(message, with_data=with_data) if as_json else None
                    click.echo(text or event_line(message))
                    seen += 1
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        subscriber.close()
    if count is not None and seen < count:
        fail(f"{seen} of {count} events before the timeout", EXIT_REFUSED)
