"""``make demo``: simulated calls through the local stack, end to end, and what became of them.

    python -m devstack.demo [--calls 12] [--timeout 120] [--state-dir .devstack]

It uses the stack that ``make dev`` / ``make dev-up`` runs (``.devstack/endpoints.env``), or
starts one in the background (``make dev-down`` stops it). The sandbox places the calls of
``demo_plan`` and sends their webhooks like TTMA (signed, retried, duplicated); the demo waits
until each call's index record is settled (transcript archived / not shipped, recording archived
/ unavailable), then prints per call its webhook answers, archive status and objects, the totals,
the dead letters and the webhook → recording lag. Exit code 0 when every call settled with no
dead letter and no 410, 1 otherwise, 2 when no stack could be used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from devstack.demo.plan import demo_plan
from devstack.demo.report import CallOutcome, DemoReport, is_final, render, seconds_between
from devstack.emulators import EmulatorError
from devstack.stack import StackError, read_endpoints, summary, up
from devstack.stack.config import DEFAULT_STATE_DIR, StackConfig, StackConfigError, resolve_ports
from devstack.stack.health import FUNCTION_PROBE_METHOD, answers
from devstack.stack.services import EMULATOR_HOST_VARS
from ttma_relay.adapters.deliveries import delivery_document_id
from ttma_relay.contract.call_keys import call_key

POLL_SECONDS = 0.5
RECONCILE_WAIT_SECONDS = 30.0  # the local grace period (5 s) and then some
DELIVERIES_COLLECTION = "ttma_deliveries"


def stack_endpoints(state_dir: Path, *, start: bool) -> dict[str, str]:
    """The running stack's endpoints; starts a background stack when there is none."""
    values = read_endpoints(state_dir)
    if (
        values
        and answers(values["SANDBOX_URL"] + "/_sandbox/health")
        and answers(values["INGEST_URL"], any_status=True, method=FUNCTION_PROBE_METHOD)
    ):
        return values
    if not start:
        raise StackError(f"no healthy local stack in {state_dir}: start one with make dev-up")
    print("No local stack is running: starting one in the background (make dev-down stops it).",
          file=sys.stderr, flush=True)  # fmt: skip
    result = up(StackConfig(ports=resolve_ports(), state_dir=state_dir))
    print(summary(result) + "\n", flush=True)
    return result.endpoints


def place_calls(
    sandbox: httpx.Client, count: int, *, with_reconcile: bool
) -> tuple[list[Any], list[dict[str, Any]]]:
    plan = demo_plan(count, with_reconcile=with_reconcile)
    calls = []
    for planned in tqdm(plan, desc="placing calls", unit="call", leave=False):
        response = sandbox.post("/_sandbox/calls", json=planned.request)
        response.raise_for_status()
        calls.append(response.json()["data"][0])
    return plan, calls


def run_reconcile(sandbox: httpx.Client, url: str, lost: int) -> None:
    """Once the webhooks are out (so they are not raced), run reconcile as the scheduler would,
    again while calls are inside its grace period, until the ``lost`` calls are published."""
    sandbox.get("/_sandbox/deliveries", params={"wait": 60})
    published = 0
    deadline = time.monotonic() + RECONCILE_WAIT_SECONDS
    while True:
        response = httpx.post(url, timeout=120)
        body = response.json() if response.headers.get("content-type", "").startswith(
            "application/json") else {}  # fmt: skip
        published += int(body.get("published") or 0)
        if published >= lost or not body.get("tooRecent") or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    print(f"reconcile: {response.status_code} {response.text.strip()}", flush=True)


def wait_settled(
    collection: Any, call_ids: Sequence[str], timeout: float
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll the index until every call's record is settled or ``timeout``; (records, seconds)."""
    started = time.monotonic()
    references = {call_id: collection.document(call_key(call_id)) for call_id in call_ids}
    records: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(call_ids), desc="archiving", unit="call", leave=False) as bar:
        while True:
            for snapshot in collection._client.get_all(list(references.values())):
                if snapshot.exists:
                    records[snapshot.reference.id] = snapshot.to_dict() or {}
            settled = sum(is_final(records.get(call_key(call_id))) for call_id in call_ids)
            bar.update(settled - bar.n)
            if settled == len(call_ids) or time.monotonic() - started > timeout:
                break
            time.sleep(POLL_SECONDS)
    return {cid: records[call_key(cid)] for cid in call_ids if call_key(cid) in records}, (
        time.monotonic() - started
    )


def dead_letters(subscription: str) -> list[dict[str, str]]:
    """Everything waiting in the dead-letter pull subscription (left there: nacked)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    found: list[dict[str, str]] = []
    ack_ids: list[str] = []
    try:
        while True:
            try:
                response = subscriber.pull(
                    request={"subscription": subscription, "max_messages": 100},
                    timeout=1.5,
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                break
            if not response.received_messages:
                break
            for received in response.received_messages:
                ack_ids.append(received.ack_id)
                attributes = dict(received.message.attributes)
                attributes.setdefault("deliveryAttempt", str(received.delivery_attempt or "?"))
                found.append(attributes)
        if ack_ids:
            request = {"subscription": subscription, "ack_ids": ack_ids, "ack_deadline_seconds": 0}
            subscriber.modify_ack_deadline(request=request)
    finally:
        subscriber.close()
    return found


def claim_times(firestore_client: Any, delivery_ids: Sequence[str]) -> dict[str, datetime]:
    collection = firestore_client.collection(DELIVERIES_COLLECTION)
    references = [collection.document(delivery_document_id(d)) for d in delivery_ids]
    times = {}
    for snapshot in firestore_client.get_all(references):
        data = snapshot.to_dict() or {} if snapshot.exists else {}
        if isinstance(data.get("claimedAt"), datetime) and data.get("deliveryId"):
            times[str(data["deliveryId"])] = data["claimedAt"]
    return times


def collect(
    endpoints: dict[str, str], plan: list[Any], calls: list[dict[str, Any]], timeout: float
) -> DemoReport:
    from google.cloud import firestore, storage

    project = endpoints["GOOGLE_CLOUD_PROJECT"]
    db = firestore.Client(project=project)
    collection = db.collection(endpoints.get("CALLS_COLLECTION", "ttma_calls"))
    records, waited = wait_settled(collection, [c["id"] for c in calls], timeout)
    with httpx.Client(base_url=endpoints["SANDBOX_URL"], timeout=30) as sandbox:
        log = sandbox.get("/_sandbox/deliveries", params={"wait": 10}).json()["data"]
    deliveries = {d["call_id"]: d for d in log}
    outcomes = [
        CallOutcome(i, planned, call, records.get(call["id"]), deliveries.get(call["id"]))
        for i, (planned, call) in enumerate(zip(plan, calls, strict=True))
    ]
    claims = claim_times(db, [o.delivery["delivery_id"] for o in outcomes if o.delivery])
    bucket = storage.Client(project=project).bucket(endpoints["ARCHIVE_BUCKET"])
    for outcome in outcomes:
        prefix = str((outcome.record or {}).get("archivePrefix") or "")
        if not prefix:
            continue
        blobs = list(bucket.list_blobs(prefix=prefix.split("/", 3)[3]))
        outcome.objects = [blob.name for blob in blobs]
        recording = next((b for b in blobs if b.name.endswith("/recording.mp3")), None)
        if outcome.delivery is None:
            continue  # no webhook (reconciled): the lag is webhook → archive
        received = claims.get(outcome.delivery["delivery_id"])
        if received is None and outcome.attempts:  # the sender's signing second, if no claim
            received = datetime.fromtimestamp(outcome.attempts[0]["signed_at"], tz=UTC)
        created = recording.time_created if recording is not None else None
        outcome.lag_seconds = seconds_between(received, created)
    subscription = (
        f"projects/{project}/subscriptions/{endpoints.get('DEAD_LETTER_SUBSCRIPTION', '')}"
    )
    return DemoReport(outcomes, dead_letters(subscription), endpoints["ARCHIVE_BUCKET"], waited)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--calls", type=int, default=12, help="how many calls (default 12)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("TTMA_DEV_STATE_DIR") or DEFAULT_STATE_DIR),
    )
    parser.add_argument(
        "--no-start", action="store_true", help="fail instead of starting a stack when none runs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.calls < 1:
        print("error: --calls must be at least 1", file=sys.stderr)
        return 2
    try:
        endpoints = stack_endpoints(args.state_dir.resolve(), start=not args.no_start)
    except (StackError, StackConfigError, EmulatorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.environ.update({k: endpoints[k] for k in (*EMULATOR_HOST_VARS, "GOOGLE_CLOUD_PROJECT")})
    reconcile_url = endpoints.get("RECONCILE_URL")
    with httpx.Client(base_url=endpoints["SANDBOX_URL"], timeout=30) as sandbox:
        plan, calls = place_calls(sandbox, args.calls, with_reconcile=bool(reconcile_url))
        print(f"{len(calls)} calls placed; the sandbox is sending their webhooks to "
              f"{endpoints['INGEST_URL']} ...", flush=True)  # fmt: skip
        if reconcile_url and not all(p.delivered for p in plan):
            run_reconcile(sandbox, reconcile_url, sum(not p.delivered for p in plan))
    report = collect(endpoints, plan, calls, args.timeout)
    print(render(report))
    print("\nOne call in full:  .venv/bin/ttma-relay --local call " + calls[0]["id"])
    ok = report.complete and not report.dead_letters and report.statuses_410 == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
