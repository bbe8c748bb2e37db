"""Ingest served by functions-framework (gunicorn, threads) as on Cloud Functions.

Concurrency, chunked bodies and the process's whole log output need a real server process.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.functions import start_function
from tests.payloads import SECRET, delivery, encode, signed_headers
from tests.pubsub_helpers import pull_all

pytestmark = pytest.mark.emulator
MAX_BODY = 64 * 1024


@pytest.fixture
def served(emulators, topic_with_subscription, unique, tmp_path: Path):
    topic_id, _ = topic_with_subscription
    env = {
        **emulators,
        "TTMA_WEBHOOK_SECRET": SECRET,
        "CALL_EVENTS_TOPIC": topic_id,
        "DELIVERIES_COLLECTION": f"deliveries_{unique}",
        "MAX_BODY_BYTES": str(MAX_BODY),
    }
    function = start_function("ingest", env, tmp_path / "ingest.log", threads=8)
    yield function
    function.stop()


def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """POST and return (status, body, monotonic time the answer arrived)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), time.time()
    finally:
        connection.close()


def test_twenty_concurrent_copies_publish_one_message_and_no_2xx_precedes_it(
    served, subscriber_client, topic_with_subscription
):
    _, subscription = topic_with_subscription
    envelope = delivery()
    body = encode(envelope)
    headers = signed_headers(body, envelope=envelope)
    barrier = threading.Barrier(20)

    def one() -> tuple[int, bytes, float]:
        barrier.wait()
        return send(served.url, body, headers)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: one(), range(20)))

    messages = pull_all(subscriber_client, subscription, settle=1.0)
    assert len(messages) == 1
    published_at = messages[0].publish_time.timestamp()
    statuses = sorted(status for status, _, _ in results)
    assert set(statuses) <= {200, 409}, statuses
    assert statuses.count(200) >= 1
    accepted = [r for r in results if r[0] == 200 and b'"accepted"' in r[1]]
    assert len(accepted) == 1
    for status, _, answered_at in results:
        if status == 200:
            # the emulator stamps publish_time with this machine's clock (ms resolution)
            assert answered_at >= published_at - 0.002


def test_chunked_body_over_the_limit_is_413_and_within_it_accepted(served):
    parsed = urllib.parse.urlsplit(served.url)

    def chunked(body: bytes) -> int:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        try:
            headers = signed_headers(body)
            connection.request(
                "POST", "/", body=iter([body[i : i + 4096] for i in range(0, len(body), 4096)]),
                headers={**headers, "Transfer-Encoding": "chunked"}, encode_chunked=True,
            )
            return connection.getresponse().status
        finally:
            connection.close()

    assert chunked(encode(delivery(transcript="y" * MAX_BODY))) == 413
    assert chunked(encode(delivery())) == 200


PII = {
    "transcript": "[Agent] Hello Bobby Tables [Caller] my card is 4111111111111111",
    "callerNumber": "+16470009999",
    "calledNumber": "+16478887777",
    "facts": {"debtor_name": "Zebediah Quux", "amount_due": "$987.65", "email": "zq@example.org"},
}


def test_logs_of_a_run_full_of_pii_contain_none_of_it(served, tmp_path):
    sent_signatures: list[str] = []

    def pii_delivery() -> dict:
        envelope = delivery(
            transcript=PII["transcript"],
            callerNumber=PII["callerNumber"],
            calledNumber=PII["calledNumber"],
        )
        envelope["data"]["task"]["facts"] = PII["facts"]
        return envelope

    outcomes = set()
    for _ in range(3):
        envelope = pii_delivery()
        body = encode(envelope)
        headers = signed_headers(body, envelope=envelope)
        sent_signatures.append(headers["X-TTMA-Signature"])
        for attempt_headers, attempt_body in (
            (headers, body),  # accepted
            (headers, body),  # duplicate
            (signed_headers(body, secret="z" * 40), body),  # wrong secret
            (headers, body + b"x"),  # tampered
            ({**headers, "X-TTMA-Event": "other"}, body),  # header mismatch
        ):
            status, _, _ = send(served.url, attempt_body, attempt_headers)
            outcomes.add(status)
        bad_json = body[:-10]
        status, _, _ = send(served.url, bad_json, signed_headers(bad_json))
        outcomes.add(status)
    assert outcomes == {200, 401, 400}

    time.sleep(0.3)
    log = served.log_path.read_text()
    assert '"outcome":"accepted"' in log and '"outcome":"duplicate"' in log
    forbidden = [
        PII["transcript"], "Bobby Tables", "4111111111111111", PII["callerNumber"],
        PII["calledNumber"], "6470009999", "Zebediah", "987.65", "zq@example.org", SECRET,
        "z" * 40,
    ]
    forbidden += [sig.split("v1=")[1] for sig in sent_signatures]
    for needle in forbidden:
        assert needle not in log, f"leaked into logs: {needle[:12]}..."


def test_missing_secret_stops_the_instance_at_start_up_with_a_clear_error(emulators, tmp_path):
    from devstack.emulators import EmulatorError

    env = {**emulators, "TTMA_WEBHOOK_SECRET": ""}
    with pytest.raises(EmulatorError, match="TTMA_WEBHOOK_SECRET is required but not set"):
        start_function("ingest", env, tmp_path / "ingest.log")
