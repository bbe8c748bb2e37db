"""The Pub/Sub half of check.sh: publish, let the emulator push to n8n, read n8n's executions.

usage (check.sh sets it up): check_pubsub.py WEBHOOK_BASE_URL N8N_SQLITE_DB
Prints which fields were non-null, never transcript or task.facts values.
"""

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from google.cloud import pubsub_v1
from google.pubsub_v1.types import DeadLetterPolicy, PushConfig

from ttma_relay.contract.messages import message_attributes

PROJECT = "ttma-n8n-check"
WEBHOOK, DB = sys.argv[1], sys.argv[2]
SAMPLE_FILE = Path(__file__).resolve().parents[2] / "tests" / "data" / "call_ended.json"
SAMPLE = json.loads(SAMPLE_FILE.read_text())
FIELDS_NODE, SKIP_NODE, LAST_NODE = "Call fields", "Skip calls already done", "Remember call"

publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
failures = []


def subscribe(name: str, path: str) -> tuple[str, str]:
    topic, dead = publisher.topic_path(PROJECT, name), publisher.topic_path(PROJECT, name + "-dl")
    for t in (topic, dead):
        publisher.create_topic(name=t)
    hold = subscriber.subscription_path(PROJECT, name + "-dl-hold")
    subscriber.create_subscription(name=hold, topic=dead)
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(PROJECT, name + "-consumer-n8n"),
            "topic": topic,
            "ack_deadline_seconds": 60,
            "push_config": PushConfig(
                push_endpoint=f"{WEBHOOK}/{path}",
                no_wrapper=PushConfig.NoWrapper(write_metadata=True),
            ),
            "dead_letter_policy": DeadLetterPolicy(dead_letter_topic=dead, max_delivery_attempts=5),
        }
    )
    return topic, hold


def publish(topic: str, tag: str, n: int, copies: int = 1, content_type: bool = True) -> list[str]:
    ids = []
    for i in range(n):
        env = json.loads(json.dumps(SAMPLE))
        env["deliveryId"] = f"{SAMPLE['deliveryId'][:24]}{tag}{i:0{12 - len(tag)}d}"
        env["data"]["id"] = f"v3:check-{tag}-{i}"
        attrs = message_attributes(env, "webhook")
        if not content_type:
            del attrs["Content-Type"]
        data = json.dumps(env, separators=(",", ":")).encode()
        for _ in range(copies):
            publisher.publish(topic, data, **attrs).result(timeout=30)
        ids.append(env["data"]["id"])
    return ids


def unflatten(a: list[Any]) -> Any:
    """n8n stores execution data in the `flatted` format: strings are indexes into the array."""
    done = {}

    def at(i: str | int) -> Any:
        i = int(i)
        if i in done:
            return done[i]
        v = a[i]
        if isinstance(v, list):
            done[i] = out = []
            out.extend(at(x) if isinstance(x, str) else x for x in v)
        elif isinstance(v, dict):
            done[i] = out = {}
            out.update({k: at(x) if isinstance(x, str) else x for k, x in v.items()})
        else:
            out = v
        return out

    return at(0)


def node_items(run: dict[str, Any], node: str) -> list[dict[str, Any]]:
    main = run.get(node, [{}])[0].get("data", {}).get("main", [[]])
    return [i["json"] for i in (main[0] or [])]


def executions(call_ids: list[str]) -> list[dict[str, Any]]:
    rows = (
        sqlite3.connect(DB)
        .execute(
            "SELECT e.id, e.status, d.data FROM execution_entity e "
            "JOIN execution_data d ON d.executionId = e.id ORDER BY e.id"
        )
        .fetchall()
    )
    out = []
    for eid, status, data in rows:
        result = unflatten(json.loads(data))["resultData"]
        run = result.get("runData", {})
        hook = (node_items(run, "Pub/Sub push") or [{}])[0]
        if hook.get("headers", {}).get("callid") not in call_ids:
            continue
        out.append(
            {
                "id": eid,
                "status": status,
                "hook": hook,
                "fields": (node_items(run, FIELDS_NODE) or [None])[0],
                "skipped": SKIP_NODE in run and not node_items(run, SKIP_NODE),
                "remembered": bool(node_items(run, LAST_NODE)),
                "error": (result.get("error") or {}).get("message"),
            }
        )
    return out


def settle(call_ids: list[str], expected: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = executions(call_ids)
        if len(got) >= expected:
            time.sleep(3)  # a late redelivery would show up here
            return executions(call_ids)
        time.sleep(0.5)
    return executions(call_ids)


def dead_letters(hold: str, expected: int, timeout: float = 30) -> list[str]:
    got, deadline = [], time.time() + timeout
    while len(got) < expected and time.time() < deadline:
        r = subscriber.pull(subscription=hold, max_messages=100, timeout=5)
        got += [m.message.attributes.get("callId") for m in r.received_messages]
        if r.received_messages:
            acks = [m.ack_id for m in r.received_messages]
            subscriber.acknowledge(subscription=hold, ack_ids=acks)
    return got


def non_null(fields: dict[str, Any]) -> list[str]:
    return [k for k, v in fields.items() if v not in (None, "")]


def expect(what: str, ok: object) -> None:
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)


def main() -> int:
    topic, hold = subscribe("ttma-call-events", "ttma")

    print("A  3 calls WITHOUT the Content-Type attribute")
    ids = publish(topic, "noct", 3, content_type=False)
    dead = dead_letters(hold, 3)
    ex = settle(ids, 15)
    body = ex[0]["hook"].get("body") if ex else None
    errors = sum(e["status"] == "error" for e in ex)
    content_type = ex[0]["hook"]["headers"].get("content-type") if ex else None
    print(
        f"   executions {len(ex)} ({errors} error), dead letters {len(dead)}; "
        f"n8n's content-type {content_type!r}; "
        f"body parsed as {type(body).__name__} with {len(body or {})} key(s), "
        f"$json.body.data.id = {((body or {}).get('data') or {}).get('id')!r}"
    )
    expect("every execution failed (answered 500, not acknowledged)", ex and errors == len(ex))
    expect(
        "no field extracted, nothing remembered",
        all(e["fields"] is None and not e["remembered"] for e in ex),
    )
    expect(
        "all 3 dead-lettered after 5 attempts each",
        sorted(dead) == sorted(ids) and len(ex) == 15,
    )
    print("   headers n8n saw:", json.dumps(ex[0]["hook"]["headers"]) if ex else None)

    print("B  5 calls WITH Content-Type: application/json")
    ids = publish(topic, "ct", 5)
    ex = settle(ids, 5)
    counts = [f"{len(non_null(e['fields']))}/{len(e['fields'])}" for e in ex if e["fields"]]
    print(f"   executions {len(ex)}, fields non-null per execution {counts}")
    expect(
        "5 successful executions, every field non-null",
        len(ex) == 5
        and all(
            e["status"] == "success"
            and e["fields"]
            and len(non_null(e["fields"])) == len(e["fields"])
            for e in ex
        ),
    )
    pairs = [("callId", "headerCallId"), ("deliveryId", "headerDeliveryId")]
    pairs.append(("endedReason", "headerEndedReason"))
    expect(
        "body and header values agree",
        all(e["fields"][a] == e["fields"][b] for e in ex for a, b in pairs),
    )
    print("   headers n8n saw:", json.dumps(ex[0]["hook"]["headers"]) if ex else None)

    print("C  3 calls, then the same 3 again once processed (a redelivery / a second publish)")
    ids = publish(topic, "dup", 3)
    settle(ids, 3)
    publish(topic, "dup", 3)
    ex = settle(ids, 6)
    done, skipped = [e for e in ex if e["remembered"]], [e for e in ex if e["skipped"]]
    print(f"   executions {len(ex)}: processed {len(done)}, skipped as already done {len(skipped)}")
    expect(
        "6 successful executions: 3 processed, 3 skipped",
        len(ex) == 6
        and all(e["status"] == "success" for e in ex)
        and (len(done), len(skipped)) == (3, 3)
        and sorted(e["fields"]["callId"] for e in done) == sorted(ids),
    )

    print("C2 3 calls, each published twice back to back (copies pushed at the same moment)")
    ids = publish(topic, "conc", 3, copies=2)
    ex = settle(ids, 6)
    done, skipped = [e for e in ex if e["remembered"]], [e for e in ex if e["skipped"]]
    print(
        f"   executions {len(ex)}: processed {len(done)}, skipped {len(skipped)} "
        "(informational: copies running at once both pass the check)"
    )
    expect(
        "6 successful executions, each call processed at least once",
        len(ex) == 6
        and all(e["status"] == "success" for e in ex)
        and set(e["fields"]["callId"] for e in done) == set(ids),
    )

    print("D  1 call whose first run fails after the dedup check (copy of the workflow)")
    topic_d, _ = subscribe("ttma-fail-once", "ttma-fail-once")
    ids = publish(topic_d, "once", 1)
    ex = settle(ids, 2)
    print("   runs:", [(e["status"], e["error"], "remembered" * e["remembered"]) for e in ex])
    expect(
        "first run error, redelivery processed",
        [e["status"] for e in ex] == ["error", "success"] and ex[1]["remembered"],
    )
    publish(topic_d, "once", 1)
    ex = settle(ids, 3)
    expect(
        "a republished copy afterwards is skipped",
        len(ex) == 3 and ex[2]["skipped"] and ex[2]["status"] == "success",
    )

    print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
