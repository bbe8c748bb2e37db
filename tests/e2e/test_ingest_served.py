"""Ingest served by functions-framework (gunicorn, threads) as on Cloud Functions.

Concurrency, chunked bodies and the process's whole log output need a real server process.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.functions import start_function
from tests.support.payloads import SECRET, delivery, encode, signed_headers
from tests.support.pubsub import pull_all
from tests.support.raw_http import BAD_CHUNKINGS, chunked, exchange, request_bytes

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
                "POST",
                "/",
                body=iter([body[i : i + 4096] for i in range(0, len(body), 4096)]),
                headers={**headers, "Transfer-Encoding": "chunked"},
                encode_chunked=True,
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
        PII["transcript"],
        "Bobby Tables",
        "4111111111111111",
        PII["callerNumber"],
        PII["calledNumber"],
        "6470009999",
        "Zebediah",
        "987.65",
        "zq@example.org",
        SECRET,
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


# --- issue 13: the HTTP edge answers every input with JSON, never a 500 ---------------------

CANARY = "QZXcanary7113"  # inside every body below; must reach neither a response nor the log


def canary_delivery() -> tuple[dict, bytes]:
    envelope = delivery(transcript=f"[Agent] {CANARY} [Caller] hello")
    return envelope, encode(envelope)


def raw_post(served, framing: bytes, headers: dict[str, str], method: str = "POST"):
    data = request_bytes(b"", {**headers, "Connection": "close"}, method=method, framing=framing)
    return exchange(served.port, data)


def assert_log_clean(served, *needles: str) -> None:
    """Every line is one of our JSON log lines, none an error, none with the needles."""
    time.sleep(0.2)
    log = served.log_path.read_text(errors="replace")
    for line in log.splitlines():
        record = json.loads(line)  # a traceback or a gunicorn/flask text line fails here
        assert record["severity"] in {"INFO", "WARNING"}, line
    for needle in (CANARY, *needles):
        assert needle not in log, f"leaked into logs: {needle!r}"


@pytest.mark.parametrize("case", sorted(BAD_CHUNKINGS))
def test_bad_chunked_framing_of_a_signed_body_is_json_400_and_logs_no_body_bytes(
    served, subscriber_client, topic_with_subscription, case
):
    _, subscription = topic_with_subscription
    envelope, body = canary_delivery()
    headers = {**signed_headers(body, envelope=envelope), "Transfer-Encoding": "chunked"}

    response = raw_post(served, BAD_CHUNKINGS[case](body), headers)

    assert response.status == 400, response.raw[:300]
    assert response.is_json
    assert response.json()["status"] == "malformed_delivery"
    assert "framing" in response.json()["error"]
    assert CANARY.encode() not in response.raw
    assert pull_all(subscriber_client, subscription, settle=0.3) == []
    assert_log_clean(served, "#~")
    assert '"cause":"' in served.log_path.read_text()  # the exception's class name only


def test_body_shorter_than_its_content_length_is_400_even_when_the_bytes_verify(
    served, subscriber_client, topic_with_subscription
):
    """The sender hung up: the bytes that arrived are signed (a sender that signs what it has
    sent so far), but the delivery is incomplete, so nothing is published."""
    _, subscription = topic_with_subscription
    envelope, body = canary_delivery()
    headers = {**signed_headers(body, envelope=envelope), "Content-Length": str(len(body) + 50)}

    response = raw_post(served, body, headers)

    assert response.status == 400, response.raw[:300]
    assert response.json()["status"] == "malformed_delivery"
    assert "shorter than its Content-Length" in response.json()["error"]
    assert pull_all(subscriber_client, subscription, settle=0.3) == []
    assert_log_clean(served)


def test_well_framed_raw_requests_are_accepted(served, subscriber_client, topic_with_subscription):
    """The controls of the two tests above: the same bytes, framed correctly, are published."""
    _, subscription = topic_with_subscription
    first, first_body = canary_delivery()
    second, second_body = canary_delivery()
    by_length = {
        **signed_headers(first_body, envelope=first),
        "Content-Length": str(len(first_body)),
    }
    by_chunks = {**signed_headers(second_body, envelope=second), "Transfer-Encoding": "chunked"}

    assert raw_post(served, first_body, by_length).status == 200
    assert raw_post(served, chunked(second_body[:100], second_body[100:]), by_chunks).status == 200
    assert len(pull_all(subscriber_client, subscription, settle=0.5)) == 2


def test_unread_bodies_with_bad_framing_are_not_read_after_the_answer(served):
    """functions-framework reads the rest of the body after every response; ingest stops that
    read, so a refusal that left the body unread (405, 413) stays a JSON refusal, not a 500."""
    _, body = canary_delivery()
    bad = b"%x\r\n%s#~" % (len(body), body)
    headers = {**signed_headers(body), "Transfer-Encoding": "chunked"}

    not_post = raw_post(served, bad, headers, method="PUT")
    # the bad chunk size comes after a second, large chunk: ingest stops reading before it
    over_limit_framing = chunked(b" " * (MAX_BODY + 1), b" " * 4 * MAX_BODY)[:-5] + b"zz\r\n"
    over_limit = raw_post(served, over_limit_framing, headers)
    declared_over = raw_post(
        served, b"{}", {**signed_headers(b"{}"), "Content-Length": str(MAX_BODY + 1)}
    )

    assert (not_post.status, not_post.json()["status"]) == (405, "method_not_allowed")
    assert (over_limit.status, over_limit.json()["status"]) == (413, "body_too_large")
    assert (declared_over.status, declared_over.json()["status"]) == (413, "body_too_large")
    assert_log_clean(served, "#~")
