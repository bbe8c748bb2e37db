"""The checks of ``ttma-relay doctor``: one function per part, each returning a ``Check``.

Every check gets the same ``Target`` (the settings) and talks to its part with short timeouts
(``TIMEOUT_SECONDS``) and no retries, so a dead part fails fast. ``run_check`` turns an
exception into a FAIL naming only its class: details never carry a secret, an API key, a
signed URL or a payload (the TTMA client redacts its key from its own messages).
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ttma_relay.contract.timestamps import iso_millis

SELF_TEST_EVENT = "ttma-relay.self_test"  # handlers/ingest.py: answered 200, never published
TIMEOUT_SECONDS = 5.0
BACKLOG_PULL_MAX = 1000  # counted at most; more shows as "1000+"
BACKLOG_WAIT_SECONDS = 2.0

ARCHIVERS = ("archive-transcript", "archive-recording")  # terraform/pubsub.tf function_push
TAIL_PREFIX = "ttma-relay-tail-"  # ttma_relay/cli/tail.py: its own short-lived pull taps


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Target:
    """What doctor checks; the option/env values of the command."""

    project: str
    ingest_url: str
    webhook_secret: str = field(repr=False)  # the first secret of the keyring
    api_key: str = field(repr=False)
    api_base_url: str
    topic: str
    dead_letter_topic: str
    hold_subscription: str
    bucket: str
    database: str
    deliveries_collection: str
    max_checkpoint_age: timedelta
    ignored_subscriptions: tuple[str, ...] = ()
    local: bool = False

    def topic_path(self, topic: str) -> str:
        return topic if "/" in topic else f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        if "/" in subscription:
            return subscription
        return f"projects/{self.project}/subscriptions/{subscription}"


def run_check(name: str, function: Callable[[Target], Check], target: Target) -> Check:
    """``function(target)``; an exception becomes a FAIL with its class name (no traceback)."""
    try:
        return function(target)
    except Exception as error:  # any failure of a part is that part's FAIL
        return Check(name, False, _error_detail(error))


def _error_detail(error: Exception) -> str:
    import httpx
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    from ttma_relay.cli.common import tls_mix_up

    if isinstance(error, auth_exc.DefaultCredentialsError):
        return "DefaultCredentialsError: no Google credentials (gcloud auth application-default)"
    name = type(error).__name__
    mix_up = tls_mix_up(error) if isinstance(error, httpx.HTTPError) else None
    if mix_up is not None:
        return f"{name}: {mix_up}"
    if isinstance(error, httpx.TimeoutException | gexc.DeadlineExceeded | TimeoutError):
        return f"{name}: no answer within {TIMEOUT_SECONDS:.0f} s"
    if isinstance(error, httpx.ConnectError | gexc.ServiceUnavailable | ConnectionError):
        return f"{name}: not reachable"
    return name


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------------ ingest


def self_test_delivery() -> tuple[bytes, dict[str, str]]:
    """The body and the headers (but the signature) of a self-test delivery."""
    envelope = {
        "event": SELF_TEST_EVENT,
        "deliveryId": f"self-test:{uuid.uuid4()}",
        "timestamp": iso_millis(datetime.now(UTC)),
        "data": {"id": "self-test"},
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-TTMA-Event": SELF_TEST_EVENT,
        "X-TTMA-Delivery-Id": envelope["deliveryId"],
    }
    return body, headers


def flip_one_hex_digit(signature: str) -> str:
    """``t=…,v1=<hex>`` with the last hex digit of the signature changed."""
    last = signature[-1]
    return signature[:-1] + ("0" if last != "0" else "1")


def _answer(response: Any) -> tuple[int, str | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body.get("status") if isinstance(body, dict) else None


def check_ingest(target: Target) -> Check:
    """A signed self-test answers 200 self_test; the same with one signature digit flipped 401."""
    import time

    import httpx

    import verify

    name = "ingest self-test"
    body, headers = self_test_delivery()
    signature = verify.sign(target.webhook_secret, body, timestamp=int(time.time()))
    with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:

        def post(signature_header: str) -> tuple[int, str | None]:
            sent = {**headers, "X-TTMA-Signature": signature_header}
            return _answer(http.post(target.ingest_url, content=body, headers=sent))

        signed = post(signature)
        if signed != (200, "self_test"):
            hint = " (wrong TTMA_WEBHOOK_SECRET?)" if signed[0] == 401 else ""
            return Check(name, False, f"signed self-test answered {signed[0]} {signed[1]}{hint}")
        tampered = post(flip_one_hex_digit(signature))
    if tampered[0] != 401:
        detail = f"tampered self-test answered {tampered[0]} {tampered[1]}, not 401"
        return Check(name, False, detail)
    return Check(name, True, "signed 200 self_test, tampered 401")


# ------------------------------------------------------------------------------------ TTMA API


def check_api_key(target: Target) -> Check:
    """``GET /v1/voice/calls?limit=1`` answers 200: the key is valid and has ``voice:read``."""
    from ttma_relay.adapters.ttma_api import InvalidRequestError, TtmaApiError, TtmaClient
    from ttma_relay.cli.common import tls_mix_up

    name = "api key voice:read"
    try:
        with TtmaClient(target.api_base_url, target.api_key, timeout=TIMEOUT_SECONDS,
                        max_retries=0) as client:  # fmt: skip
            next(client.list_calls(limit=1), None)
    except InvalidRequestError as error:  # a malformed URL or an empty key: never sent
        return Check(name, False, str(error))
    except TtmaApiError as error:  # messages name the request, never the key (redacted)
        detail = error.message.replace(target.api_key, "[redacted]")
        mix_up = tls_mix_up(error.__cause__) if error.__cause__ is not None else None
        return Check(name, False, f"{detail}: {mix_up}" if mix_up else detail)
    return Check(name, True, "GET /v1/voice/calls?limit=1 answered 200")


# ------------------------------------------------------------------------------------ Pub/Sub


def _publisher() -> Any:
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


def _subscriber() -> Any:
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def _topic_check(name: str, path: str) -> Check:
    from google.api_core import exceptions as gexc

    publisher = _publisher()
    try:
        publisher.get_topic(request={"topic": path}, timeout=TIMEOUT_SECONDS, retry=None)
    except gexc.NotFound:
        return Check(name, False, f"{_short(path)} does not exist")
    finally:
        publisher.stop()
    return Check(name, True, f"{_short(path)} exists")


def check_topic(target: Target) -> Check:
    return _topic_check("call-events topic", target.topic_path(target.topic))


def check_dead_letter_topic(target: Target) -> Check:
    return _topic_check("dead-letter topic", target.topic_path(target.dead_letter_topic))


def _is_pull(subscription: Any) -> bool:
    return not (
        subscription.push_config.push_endpoint
        or subscription.bigquery_config.table
        or subscription.cloud_storage_config.bucket
    )


def _ignored(target: Target, subscription: Any) -> bool:
    """Pull subscriptions an operator named with --ignore-subscription, and tail's own."""
    short = _short(subscription.name)
    if not _is_pull(subscription):
        return False
    if short.startswith(TAIL_PREFIX):
        return True
    return any(fnmatch.fnmatchcase(short, _short(p)) for p in target.ignored_subscriptions)


def check_subscriptions(target: Target) -> Check:
    """Every subscription on the topic dead-letters to the dead-letter topic; the archivers'
    push subscriptions are among them."""
    from google.api_core import exceptions as gexc

    name = "subscriptions"
    topic = target.topic_path(target.topic)
    dead_letter_topic = target.topic_path(target.dead_letter_topic)
    publisher, subscriber = _publisher(), _subscriber()
    try:
        names = list(publisher.list_topic_subscriptions(
            request={"topic": topic}, timeout=TIMEOUT_SECONDS, retry=None))  # fmt: skip
        problems: list[str] = []
        checked = ignored = 0
        for path in sorted(names):
            try:
                subscription = subscriber.get_subscription(
                    request={"subscription": path}, timeout=TIMEOUT_SECONDS, retry=None
                )
            except gexc.NotFound:
                problems.append(f"{_short(path)}: listed on the topic but not found")
                continue
            if _ignored(target, subscription):
                ignored += 1
                continue
            checked += 1
            policy_topic = subscription.dead_letter_policy.dead_letter_topic
            if not policy_topic:
                problems.append(f"{_short(path)}: no dead-letter policy")
            elif policy_topic != dead_letter_topic:
                problems.append(f"{_short(path)}: dead-letters to {_short(policy_topic)}, "
                                f"not {_short(dead_letter_topic)}")  # fmt: skip
    finally:
        publisher.stop()
        subscriber.close()
    present = {_short(n) for n in names}
    missing = [f"{target.topic}-{a}" for a in ARCHIVERS if f"{target.topic}-{a}" not in present]
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if problems:
        return Check(name, False, "; ".join(problems))
    detail = f"{checked} on {target.topic}, each with a dead-letter policy"
    return Check(name, True, detail + (f" ({ignored} pull ignored)" if ignored else ""))


def check_hold_subscription(target: Target) -> Check:
    from google.api_core import exceptions as gexc

    name = "hold subscription"
    path = target.subscription_path(target.hold_subscription)
    subscriber = _subscriber()
    try:
        subscription = subscriber.get_subscription(
            request={"subscription": path}, timeout=TIMEOUT_SECONDS, retry=None
        )
    except gexc.NotFound:
        return Check(name, False, f"{_short(path)} does not exist")
    finally:
        subscriber.close()
    wanted = target.topic_path(target.dead_letter_topic)
    if subscription.topic != wanted:
        return Check(name, False, f"{_short(path)} is on {_short(subscription.topic)}, "
                                  f"not {_short(wanted)}")  # fmt: skip
    return Check(name, True, f"{_short(path)} exists")


def check_backlog(target: Target) -> Check:
    """How many dead letters wait: pulled (up to ``BACKLOG_PULL_MAX``), never acked, handed
    back with ``modify_ack_deadline`` 0 (the hold subscription counts no delivery attempts)."""
    from google.api_core import exceptions as gexc

    name = "dead-letter backlog"
    path = target.subscription_path(target.hold_subscription)
    subscriber = _subscriber()
    held: dict[str, str] = {}  # message id → ack id
    try:
        while len(held) < BACKLOG_PULL_MAX:
            try:
                response = subscriber.pull(
                    request={"subscription": path,
                             "max_messages": BACKLOG_PULL_MAX - len(held)},
                    timeout=BACKLOG_WAIT_SECONDS, retry=None,
                )  # fmt: skip
            except gexc.DeadlineExceeded:  # nothing came within the wait: nothing (more) waits
                break
            except gexc.NotFound:
                return Check(name, False, f"cannot count: {_short(path)} does not exist")
            new = {r.message.message_id: r.ack_id for r in response.received_messages}
            if not set(new) - set(held):
                held.update(new)
                break
            held.update(new)
    finally:
        try:
            ack_ids = list(held.values())
            for start in range(0, len(ack_ids), 500):
                subscriber.modify_ack_deadline(
                    request={"subscription": path, "ack_ids": ack_ids[start : start + 500],
                             "ack_deadline_seconds": 0},
                    timeout=TIMEOUT_SECONDS, retry=None,
                )  # fmt: skip
        finally:
            subscriber.close()
    if not held:
        return Check(name, True, "0 dead letters")
    count = f"{len(held)}+" if len(held) >= BACKLOG_PULL_MAX else str(len(held))
    plural = "s" * (len(held) != 1)
    return Check(name, False, f"{count} dead letter{plural} waiting in {_short(path)}: "
                              "see ttma-relay replay --dry-run")  # fmt: skip


# ------------------------------------------------------------------------- Storage, Firestore


def check_bucket(target: Target) -> Check:
    import os

    from google.api_core import exceptions as gexc
    from google.cloud import storage

    name = "archive bucket"
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(project=target.project, credentials=AnonymousCredentials())
    else:
        client = storage.Client(project=target.project)
    try:
        client.get_bucket(target.bucket, timeout=TIMEOUT_SECONDS, retry=None)
    except gexc.NotFound:
        return Check(name, False, f"gs://{target.bucket} does not exist")
    finally:
        client.close()
    return Check(name, True, f"gs://{target.bucket} exists")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200 and seconds % 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds / 3600:.1f} h"


def check_checkpoint(target: Target) -> Check:
    """The watermark of ``{deliveries}/_reconcile-checkpoint``: present and not too old."""
    from google.cloud import firestore

    from ttma_relay.adapters.deliveries import CHECKPOINT_DOCUMENT

    name = "reconcile checkpoint"
    client = firestore.Client(project=target.project, database=target.database)
    try:
        snapshot = (
            client.collection(target.deliveries_collection)
            .document(CHECKPOINT_DOCUMENT)
            .get(timeout=TIMEOUT_SECONDS, retry=None)
        )
    finally:
        client.close()
    watermark = (snapshot.to_dict() or {}).get("watermark") if snapshot.exists else None
    limit = _age(target.max_checkpoint_age)
    if not isinstance(watermark, datetime):
        hint = ("POST the reconcile function once ($RECONCILE_URL)" if target.local
                else "check the reconcile scheduler job and reconcile's logs")  # fmt: skip
        where = f"{target.deliveries_collection}/{CHECKPOINT_DOCUMENT}"
        return Check(name, False, f"no watermark in {where}: reconcile never finished a run; "
                                  f"{hint}")  # fmt: skip
    age = datetime.now(UTC) - watermark
    stamp = watermark.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if age > target.max_checkpoint_age:
        return Check(name, False, f"watermark {stamp} is {_age(age)} old (limit {limit}): "
                                  "reconcile has not advanced it; see its logs")  # fmt: skip
    return Check(name, True, f"watermark {stamp}, {_age(max(age, timedelta()))} old "
                             f"(limit {limit})")  # fmt: skip


CHECKS: tuple[tuple[str, Callable[[Target], Check]], ...] = (
    ("ingest self-test", check_ingest),
    ("api key voice:read", check_api_key),
    ("call-events topic", check_topic),
    ("dead-letter topic", check_dead_letter_topic),
    ("subscriptions", check_subscriptions),
    ("hold subscription", check_hold_subscription),
    ("dead-letter backlog", check_backlog),
    ("archive bucket", check_bucket),
    ("reconcile checkpoint", check_checkpoint),
)
