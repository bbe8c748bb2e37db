"""``ttma-relay forget`` end to end on the local stack (started as ``make dev-up`` does).

Two people's calls go through the whole pipeline (webhook, ingest, Pub/Sub, both archivers).
Forgetting one person by number must leave nothing of their calls in the archive (any object
generation), the index or the delivery records, nor in what the command prints; the other
person's calls must be exactly as they were; and nothing may bring the forgotten calls back:
a vendor retry of their delivery, a new delivery of the same call, reconcile.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fixtures.stack import ENV_NAMES, RunningStack, stack_environment, wait_until
from ttma_relay.adapters.deliveries import CallTombstones, DeliveryRecords
from ttma_relay.cli import main

# Numbers the sandbox never draws (it uses 555-01xx of 416 / 647 / 905).
FORGOTTEN_NUMBER = "+12025550143"
KEPT_NUMBER = "+12025550178"
DELIVERIES = "ttma_deliveries"  # the local stack's (devstack uses the default)


def run(stack: RunningStack, *args: str, stdin: str | None = None) -> Any:
    names = ("ARCHIVE_BUCKET", "CALLS_COLLECTION", "TTMA_PHONE_HASH_KEY")
    env: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    env.update(stack.env)
    env.update({name: stack.endpoints[name] for name in names})
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


def google(stack: RunningStack) -> tuple[Any, Any]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage

    project = stack.endpoints["GOOGLE_CLOUD_PROJECT"]
    with stack_environment(stack):
        db = firestore.Client(project=project)
        bucket = storage.Client(project=project, credentials=AnonymousCredentials()).bucket(
            stack.endpoints["ARCHIVE_BUCKET"]
        )
    return db, bucket


def settled(db: Any, stack: RunningStack, call_ids: list[str]) -> dict[str, dict[str, Any]]:
    from ttma_relay.contract.call_keys import call_key

    def check() -> dict[str, dict[str, Any]] | None:
        index = db.collection(stack.endpoints["CALLS_COLLECTION"])
        found = {c: index.document(call_key(c)).get() for c in call_ids}
        records = {c: s.to_dict() for c, s in found.items() if s.exists}
        done = len(records) == len(call_ids) and all(
            r.get("recordingStatus") in ("archived", "unavailable")
            and r.get("transcriptStatus") in ("archived", "not_shipped")
            for r in records.values()
        )
        return records if done else None

    return wait_until(check, timeout=60, what="the calls archived and indexed")


def everything(db: Any, bucket: Any, stack: RunningStack) -> dict[str, Any]:
    """Every object (all generations, with content), index document and delivery document."""
    objects = {
        f"{blob.name}#{blob.generation}": blob.download_as_bytes()
        for blob in bucket.list_blobs(versions=True)
    }
    index = {s.id: s.to_dict() for s in db.collection(stack.endpoints["CALLS_COLLECTION"]).stream()}
    deliveries = {s.id: s.to_dict() for s in db.collection(DELIVERIES).stream()}
    return {"objects": objects, "index": index, "deliveries": deliveries}


def of_call(state: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """What ``state`` holds that names ``call`` (its id, key or number) in a value."""
    from ttma_relay.contract.call_keys import call_key

    needles = [call["id"], call_key(call["id"]), call["callerNumber"], call["calledNumber"]]
    needles = [n for n in needles if n not in AGENT_NUMBERS]
    found: dict[str, Any] = {}
    for name, data in state["objects"].items():
        if any(n.encode() in data or n in name for n in needles):
            found[f"object {name}"] = True
    for kind in ("index", "deliveries"):
        for doc_id, document in state[kind].items():
            text = json.dumps(document, default=str)
            if any(n in text for n in needles):
                found[f"{kind} {doc_id}"] = document
    return found


AGENT_NUMBERS: set[str] = set()


@pytest.fixture(scope="module")
def people(dev_stack: RunningStack) -> dict[str, list[dict[str, Any]]]:
    """Two calls of the person to forget (outbound with task facts, inbound), one of another."""
    AGENT_NUMBERS.add(dev_stack.endpoints["TTMA_AGENT_NUMBER"])
    forgotten = [
        dev_stack.simulate(direction="outbound", customer_number=FORGOTTEN_NUMBER, deliver=True)[0],
        dev_stack.simulate(direction="inbound", customer_number=FORGOTTEN_NUMBER, deliver=True)[0],
    ]
    kept = [dev_stack.simulate(direction="outbound", customer_number=KEPT_NUMBER, deliver=True)[0]]
    db, _ = google(dev_stack)
    settled(db, dev_stack, [c["id"] for c in forgotten + kept])
    return {"forgotten": forgotten, "kept": kept}


def test_forget_by_number_removes_that_persons_calls_and_nothing_else(
    dev_stack: RunningStack, people: dict[str, list[dict[str, Any]]]
) -> None:
    db, bucket = google(dev_stack)
    before = everything(db, bucket, dev_stack)
    forgotten, kept = people["forgotten"], people["kept"]
    for call in forgotten:
        assert of_call(before, call), "the call should be archived before it is forgotten"

    dry = run(dev_stack, "forget", "--phone", "+1 (202) 555-0143", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert everything(db, bucket, dev_stack) == before  # a dry run removes nothing
    for call in forgotten:
        assert f"{call['id']}: would remove " in dry.output
    assert "2 call(s) found" in dry.output

    done = run(dev_stack, "forget", "--phone", "-", "--bigquery-table", "p.ds.call_events",
               stdin=FORGOTTEN_NUMBER + "\n")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "2 call(s) forgotten" in done.output
    assert "bq query --use_legacy_sql=false" in done.output
    assert all(call["id"] in done.output for call in forgotten)
    for shown in (dry.output, done.output):  # the number never, in any form
        assert not any(form in shown for form in (FORGOTTEN_NUMBER, "2025550143", "555-0143"))

    after = everything(db, bucket, dev_stack)
    for call in forgotten:
        assert of_call(after, call) == {}, "something of the forgotten call remains"
    for call in kept:  # untouched, byte for byte
        assert of_call(after, call) == of_call(before, call) != {}
    kept_objects = {k: v for k, v in before["objects"].items() if kept[0]["id"].split(":")[-1] in k}
    assert kept_objects and all(after["objects"].get(k) == v for k, v in kept_objects.items())

    again = run(dev_stack, "forget", "--phone", FORGOTTEN_NUMBER)
    assert again.exit_code == 0 and "0 call(s) forgotten" in again.output
    assert "no indexed call has that number" in again.output


def test_nothing_brings_a_forgotten_call_back(
    dev_stack: RunningStack, people: dict[str, list[dict[str, Any]]]
) -> None:
    db, bucket = google(dev_stack)
    call = people["forgotten"][0]
    result = run(dev_stack, "forget", "--call-id", call["id"])  # idempotent
    assert result.exit_code == 0, result.output
    tombstones = CallTombstones(db, DELIVERIES)
    assert tombstones.is_forgotten(call["id"])
    assert call["id"] in DeliveryRecords(db, DELIVERIES).published_calls([call["id"]])  # reconcile

    with dev_stack.sandbox() as sandbox:  # a new delivery of the same call, and a retry of it
        sandbox.post(f"/_sandbox/calls/{call['id']}/deliver", json={"duplicates": 1})
    logs = dev_stack.state_dir / "logs"

    def both_archivers_said_forgotten() -> bool:
        said = 0
        for name in ("archive_transcript", "archive_recording"):
            lines = (logs / f"{name}.log").read_text().splitlines()
            said += any('"outcome":"forgotten"' in line and call["id"] in line for line in lines)
        return said == 2

    wait_until(both_archivers_said_forgotten, timeout=30, what="the archivers acking it forgotten")
    state = everything(db, bucket, dev_stack)
    found = of_call(state, call)
    # The new delivery's own record names the call (ingest cannot know it was forgotten), but
    # nothing was archived or indexed again.
    assert all(where.startswith("deliveries ") for where in found), found
    assert all(set(doc) <= {"deliveryId", "callId", "source", "state", "claimedAt", "leaseSeconds",
                            "expireAt", "attempts", "messageId", "publishedAt"}
               for doc in found.values())  # fmt: skip
