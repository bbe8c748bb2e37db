"""ingest's decisions, in-process: every answer of its status table, the order of its checks,
and the claim → publish → mark/release sequence, with fakes of the delivery claims and the
publisher (``tests/unit/fakes.py``).

Requests are real werkzeug/flask requests built in-process and signed with ``verify.sign``; the
handler is ``handlers.ingest.handle(request, deps)``, as ``main.ingest`` calls it.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from google.api_core import exceptions as gexc
from werkzeug.test import EnvironBuilder

import verify
from handlers import ingest
from handlers.ingest import IngestDeps
from tests.support.payloads import PREVIOUS_SECRET, SECRET, delivery, encode, signed_headers
from tests.unit.fakes import FakeDeliveryClaims, FakePublisher
from ttma_relay.adapters.deliveries import MIN_MARK_SECONDS, call_marker_id
from ttma_relay.contract.messages import message_attributes
from ttma_relay.settings import GoogleSettings, IngestSettings

LIMIT = 64 * 1024


def settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "google": GoogleSettings("unit-project"),
        "webhook_secrets": (SECRET,),
        "max_body_bytes": LIMIT,
    }
    return IngestSettings(**(values | overrides))


@pytest.fixture
def deps(claims: FakeDeliveryClaims, publisher: FakePublisher) -> IngestDeps:
    return IngestDeps(settings(), claims, publisher)


class Unreadable(io.RawIOBase):
    """A request body whose server-side reading fails (bad chunked framing under gunicorn)."""

    reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        Unreadable.reads += 1
        raise ValueError("Invalid chunk size: 'zz' <the body's bytes would be quoted here>")


def chunked(stream: Any) -> dict[str, Any]:
    """Environ of a body without ``Content-Length`` that the server frames itself (chunked):
    gunicorn sets ``wsgi.input_terminated``, so werkzeug reads its stream as it is."""
    return {
        "wsgi.input": stream,
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_LENGTH": None,
    }


def declared(stream: Any, length: int) -> dict[str, Any]:
    """Environ of a body with ``Content-Length`` as gunicorn hands it over: its stream stops
    where the bytes stop, ``wsgi.input_terminated`` set (a sender that hung up early)."""
    return {"wsgi.input": stream, "wsgi.input_terminated": True, "CONTENT_LENGTH": str(length)}


def build_request(
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    environ: dict[str, Any] | None = None,
) -> flask.Request:
    built = EnvironBuilder(path="/", method=method, data=body, headers=headers or {})
    values = built.get_environ()
    for name, value in (environ or {}).items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return flask.Request(values)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    text: str
    log: dict[str, Any]


def answer(deps: IngestDeps, request: flask.Request, log_lines: Any) -> Answer:
    logged = len(log_lines())
    response = ingest.handle(request, deps)
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    body = json.loads(text)
    [line] = log_lines()[logged:]  # one line per request
    # The log outcome is a contract (log-based metrics): the body's status, the HTTP status.
    assert line["outcome"] == body["status"] and line["httpStatus"] == response.status_code
    return Answer(response.status_code, body, dict(response.headers), text, line)


def post(
    deps: IngestDeps,
    log_lines: Any,
    envelope: Any = None,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    **sign: Any,
) -> Answer:
    raw = encode(envelope) if body is None else body
    signed = signed_headers(raw, envelope=envelope if body is None else None, **sign)
    return answer(deps, build_request(raw, headers=signed | (headers or {})), log_lines)


# --- 200 ---------------------------------------------------------------------------------------


def test_accepted_publishes_the_exact_signed_bytes_then_marks_the_record(
    deps, claims, publisher, journal, log_lines
):
    envelope = delivery()
    got = post(deps, log_lines, envelope)

    assert got.status == 200
    assert got.body == {"status": "accepted", "deliveryId": envelope["deliveryId"]}
    [message] = publisher.messages
    assert message.data == encode(envelope)  # the verified bytes, not re-serialised JSON
    assert message.attributes == message_attributes(envelope, "webhook")
    assert journal == ["claims.claim", "publisher.publish", "claims.mark_published"]
    record = claims.state_of(envelope["deliveryId"])
    assert record["state"] == "published" and record["messageId"] == message.message_id
    assert record["source"] == "webhook" and record["callId"] == envelope["data"]["id"]
    marker = claims.markers[call_marker_id(envelope["data"]["id"])]
    assert marker["deliveryId"] == envelope["deliveryId"]
    assert got.log["messageId"] == message.message_id and "markFailed" not in got.log


def test_a_published_delivery_is_a_duplicate_and_is_not_published_again(
    deps, publisher, journal, log_lines
):
    envelope = delivery()
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    journal.clear()
    for _ in range(2):
        got = post(deps, log_lines, envelope)
        assert got.status == 200
        assert got.body == {"status": "duplicate", "deliveryId": envelope["deliveryId"]}
    assert len(publisher.messages) == 1
    assert journal == ["claims.claim", "claims.claim"]


def test_ids_unsafe_as_document_ids_are_deduplicated_too(deps, publisher, log_lines):
    envelope = delivery()
    envelope["deliveryId"] = "weird/../__id__"
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert post(deps, log_lines, envelope).body["status"] == "duplicate"
    assert len(publisher.messages) == 1


def test_a_signed_self_test_is_200_and_never_claimed_nor_published(
    deps, claims, publisher, journal, log_lines
):
    envelope = {
        "event": ingest.SELF_TEST_EVENT,
        "deliveryId": "self-test:doctor-1",
        "timestamp": "2026-12-01T00:00:00.000Z",
        "data": {"id": "self-test"},
    }
    got = post(deps, log_lines, envelope)
    assert got.status == 200
    assert got.body == {"status": "self_test", "deliveryId": "self-test:doctor-1"}
    assert journal == [] and claims.records == {} and publisher.messages == []
    forged = post(deps, log_lines, envelope, secret="a-wrong-secret-of-at-least-32-characters")  # noqa: S106  a deliberately wrong test secret
    assert forged.status == 401 and journal == []


def test_unknown_event_types_and_null_fields_are_accepted_and_passed_through(
    deps, publisher, log_lines
):
    envelope = delivery(endedReason=None, transcript=None, task=None, hasTranscript=False)
    envelope["event"] = "call.summarized"
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    [message] = publisher.messages
    assert message.attributes["event"] == "call.summarized"
    assert message.attributes["endedReason"] == ""
    assert message.attributes["hasTranscript"] == "false"


# --- 401 ---------------------------------------------------------------------------------------


def signature_cases() -> dict[str, Any]:
    now = int(time.time())
    return {
        "missing": lambda body: {},
        "empty": lambda body: {"X-TTMA-Signature": ""},
        "wrong secret": lambda body: signed_headers(body, secret="x" * 40),
        "stale": lambda body: signed_headers(body, timestamp=now - 301),
        "future": lambda body: signed_headers(body, timestamp=now + 301),
        "garbage": lambda body: {"X-TTMA-Signature": "t=abc,v1=zz"},
        "short digest": lambda body: {"X-TTMA-Signature": f"t={now},v1=abcd"},
        "tampered body": lambda body: signed_headers(body[:-1] + b" }"),
    }


@pytest.mark.parametrize("case", sorted(signature_cases()))
def test_a_delivery_that_does_not_verify_is_401_and_touches_nothing(deps, journal, log_lines, case):
    envelope = delivery()
    body = encode(envelope)
    headers = signature_cases()[case](body)
    got = answer(deps, build_request(body, headers=headers), log_lines)
    assert got.status == 401 and got.body["status"] == "invalid_signature"
    assert "deliveryId" not in got.body  # unauthenticated: the body is never parsed
    assert journal == []
    for secret_or_payload in (SECRET, "Bobby", "+1647", headers.get("X-TTMA-Signature") or "-"):
        assert secret_or_payload not in got.text


@pytest.mark.parametrize("skew", [-290, 290])
def test_timestamps_inside_the_tolerance_either_way_are_accepted(deps, log_lines, skew):
    got = post(deps, log_lines, delivery(), timestamp=int(time.time()) + skew)
    assert got.status == 200


def test_a_tolerance_setting_narrows_the_window(claims, publisher, log_lines):
    narrow = IngestDeps(settings(signature_tolerance_seconds=60), claims, publisher)
    assert post(narrow, log_lines, delivery(), timestamp=int(time.time()) - 120).status == 401


def test_the_previous_secret_verifies_only_while_it_is_in_the_keyring(claims, publisher, log_lines):
    rotating = IngestDeps(settings(webhook_secrets=(SECRET, PREVIOUS_SECRET)), claims, publisher)
    got = post(rotating, log_lines, delivery(), secret=PREVIOUS_SECRET)
    assert got.status == 200 and got.log["keyId"]
    after = IngestDeps(settings(), claims, publisher)
    assert post(after, log_lines, delivery(), secret=PREVIOUS_SECRET).status == 401


# --- 400 ---------------------------------------------------------------------------------------


def spliced(text: str) -> bytes:
    """A valid delivery's JSON with ``text`` spliced in as the first member of ``data``."""
    return encode(delivery()).replace(b'"data":{', b'"data":{' + text.encode() + b",", 1)


MALFORMED = {
    "syntax": (b"{not json", "(syntax)"),
    "not utf-8": (b'{"deliveryId":"\xff"}', "(not UTF-8)"),
    "byte order mark": (b"\xef\xbb\xbf" + encode(delivery()), "(byte order mark)"),
    "utf-16": (json.dumps(delivery()).encode("utf-16"), "(not UTF-8)"),
    "array": (b"[1, 2]", "must be a JSON object"),
    "no deliveryId": (b'{"event":"call.ended","data":{"id":"v3:x"}}', "deliveryId is required"),
    "empty deliveryId": (b'{"deliveryId":"","data":{"id":"v3:x"}}', "deliveryId is required"),
    "blank deliveryId": (b'{"deliveryId":"  ","data":{"id":"v3:x"}}', "deliveryId is required"),
    "numeric deliveryId": (b'{"deliveryId":7,"data":{"id":"v3:x"}}', "deliveryId is required"),
    "event not a string": (b'{"deliveryId":"d","event":5,"data":{"id":"v"}}', "event must be"),
    "no data": (b'{"deliveryId":"d1"}', "data is required"),
    "data a list": (b'{"deliveryId":"d1","data":[]}', "data is required"),
    "no data.id": (b'{"deliveryId":"d1","data":{}}', "data.id is required"),
    "null data.id": (b'{"deliveryId":"d1","data":{"id":null}}', "data.id is required"),
    "deliveryId over 1024 bytes": (
        encode({**delivery(), "deliveryId": "é" * 513}),
        "deliveryId is longer than 1024 bytes",
    ),
    "data.id over 1024 bytes": (encode(delivery(id="v" * 1025)), "data.id is longer than 1024"),
    "duplicate key": (spliced('"status":"failed"'), "(duplicate key)"),
    "NaN": (spliced('"durationSeconds":NaN'), "(NaN is not JSON)"),
    "lone surrogate": (spliced(r'"note":"\ud800"'), "(unpaired surrogate escape)"),
    "4301-digit integer": (spliced('"n":' + "9" * 4301), "(integer with too many digits)"),
    "65 levels": (spliced('"deep":' + "[" * 64 + "]" * 64), "(nested deeper than 64 levels)"),
    "past the recursion limit": (
        spliced('"deep":' + "[" * 20000 + "]" * 20000),
        "(nested deeper than 64 levels)",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_signed_malformed_body_is_400_saying_why_and_nothing_is_claimed(
    deps, journal, log_lines, case
):
    body, reason = MALFORMED[case]
    got = post(deps, log_lines, body=body)
    assert got.status == 400 and got.body["status"] == "malformed_delivery"
    assert reason in got.body["error"]
    assert "deliveryId" not in got.body
    assert journal == []


def test_paired_surrogates_and_60_levels_of_nesting_are_accepted(deps, publisher, log_lines):
    body = spliced(r'"note":"\ud83d\ude00","deep":' + "[" * 60 + "]" * 60)
    assert post(deps, log_lines, body=body).status == 200
    assert publisher.messages[0].data == body


def test_the_signed_bytes_decide_not_the_content_type(deps, publisher, log_lines):
    assert post(deps, log_lines, delivery(), headers={"Content-Type": "text/plain"}).status == 200
    utf16 = json.dumps(delivery()).encode("utf-16")
    charset = {"Content-Type": "application/json; charset=utf-16"}
    assert post(deps, log_lines, body=utf16, headers=charset).status == 400
    assert len(publisher.messages) == 1


@pytest.mark.parametrize("header", [ingest.DELIVERY_ID_HEADER, ingest.EVENT_HEADER])
def test_a_header_that_disagrees_with_the_body_is_400(deps, journal, log_lines, header):
    got = post(deps, log_lines, delivery(), headers={header: "something-else"})
    assert got.status == 400 and got.body["status"] == "header_body_mismatch"
    assert journal == []


def test_bad_framing_is_400_and_logs_the_cause_by_class_name_only(deps, journal, log_lines):
    got = answer(deps, build_request(environ=chunked(Unreadable())), log_lines)
    assert got.status == 400 and got.body["status"] == "malformed_delivery"
    assert got.body["error"] == "request body framing is invalid"
    assert got.log["cause"] == "ValueError"
    assert "zz" not in json.dumps(got.log) and "zz" not in got.text
    assert journal == []


def test_a_body_shorter_than_its_content_length_is_400_even_when_it_verifies(
    deps, journal, log_lines
):
    body = encode(delivery())
    request = build_request(
        headers=signed_headers(body),  # what arrived is signed correctly: still incomplete
        environ=declared(io.BytesIO(body), len(body) + 10),
    )
    got = answer(deps, request, log_lines)
    assert got.status == 400 and got.body["error"] == "body is shorter than its Content-Length"
    assert got.log["cause"] == "truncated"
    assert journal == []


# --- 405, 413 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
def test_anything_but_post_is_405_with_allow_and_the_body_is_not_read(
    deps, journal, log_lines, method
):
    Unreadable.reads = 0
    environ = declared(Unreadable(), 10 * LIMIT)  # over the limit too
    got = answer(deps, build_request(method=method, environ=environ), log_lines)
    assert got.status == 405 and got.body["status"] == "method_not_allowed"
    assert got.headers["Allow"] == "POST"
    assert Unreadable.reads == 0 and journal == []


def test_a_declared_length_over_the_limit_is_413_before_reading(deps, journal, log_lines):
    Unreadable.reads = 0
    environ = declared(Unreadable(), LIMIT + 1)
    got = answer(deps, build_request(environ=environ), log_lines)
    assert got.status == 413 and got.body["status"] == "body_too_large"
    assert Unreadable.reads == 0 and journal == []


def padded_to(size: int) -> tuple[dict[str, Any], bytes]:
    envelope = delivery(transcript="")
    envelope["data"]["transcript"] = "x" * (size - len(encode(envelope)))
    body = encode(envelope)
    assert len(body) == size
    return envelope, body


def test_a_chunked_body_over_the_limit_is_413_while_reading(deps, journal, log_lines):
    _, body = padded_to(LIMIT + 1)
    request = build_request(headers=signed_headers(body), environ=chunked(io.BytesIO(body)))
    got = answer(deps, request, log_lines)
    assert got.status == 413 and journal == []


def test_a_body_of_exactly_the_limit_is_accepted(deps, publisher, log_lines):
    _, body = padded_to(LIMIT)
    request = build_request(headers=signed_headers(body), environ=chunked(io.BytesIO(body)))
    assert answer(deps, request, log_lines).status == 200
    assert publisher.messages[0].data == body


def test_the_checks_come_in_the_documented_order(deps, journal, log_lines):
    """405 → 413 → framing 400 → 401 → body 400 → header 400 (docs/architecture.md)."""
    big = {"CONTENT_LENGTH": str(LIMIT + 1)}
    assert answer(deps, build_request(method="GET", environ=big), log_lines).status == 405
    unsigned_big = build_request(environ=chunked(io.BytesIO(b"{" * (LIMIT + 1))))
    assert answer(deps, unsigned_big, log_lines).status == 413
    unsigned_unframed = build_request(environ=chunked(Unreadable()))
    assert answer(deps, unsigned_unframed, log_lines).body["status"] == "malformed_delivery"
    unsigned_garbage = build_request(b"{not json")
    assert answer(deps, unsigned_garbage, log_lines).status == 401
    mismatched_and_malformed = post(
        deps, log_lines, body=b'{"deliveryId":"d1"}', headers={ingest.DELIVERY_ID_HEADER: "d2"}
    )
    assert mismatched_and_malformed.body["status"] == "malformed_delivery"
    assert journal == []


# --- 409 ---------------------------------------------------------------------------------------


def test_a_delivery_in_flight_is_409_with_the_rest_of_the_lease_and_nothing_is_published(
    deps, claims, publisher, clock, log_lines
):
    envelope = delivery()
    claims.claim(envelope["deliveryId"], envelope["data"]["id"])  # another request holds it
    got = post(deps, log_lines, envelope)
    assert got.status == 409
    assert got.body["status"] == "in_flight" and got.body["deliveryId"] == envelope["deliveryId"]
    assert got.headers["Retry-After"] == "10"  # the whole 10 s lease is left
    clock.advance(7.5)
    assert post(deps, log_lines, envelope).headers["Retry-After"] == "3"  # 2.5 s, rounded up
    clock.advance(2.4)
    assert post(deps, log_lines, envelope).headers["Retry-After"] == "1"  # never 0
    assert publisher.messages == []
    assert claims.state_of(envelope["deliveryId"])["attempts"] == 1


def test_a_claim_is_judged_by_its_own_claimants_lease(deps, claims, clock, log_lines):
    envelope = delivery()
    claims.claim(envelope["deliveryId"], envelope["data"]["id"], source="reconcile")
    claims.records[envelope["deliveryId"]]["leaseSeconds"] = 130  # reconcile's longer lease
    clock.advance(20)  # past ingest's own 10 s lease, inside the claimant's
    got = post(deps, log_lines, envelope)
    assert got.status == 409 and got.headers["Retry-After"] == "110"


def test_a_claim_whose_lease_ran_out_is_taken_over_and_published(
    deps, claims, publisher, clock, log_lines
):
    envelope = delivery()
    claims.claim(envelope["deliveryId"], envelope["data"]["id"])  # its request died
    clock.advance(10)
    got = post(deps, log_lines, envelope)
    assert got.body["status"] == "accepted" and got.log["takenOver"] is True
    assert len(publisher.messages) == 1
    record = claims.state_of(envelope["deliveryId"])
    assert record["attempts"] == 2 and record["state"] == "published"


# --- 503 and the claim/release order --------------------------------------------------------


def test_a_claim_failure_is_503_with_retry_after_and_the_retry_publishes_once(
    deps, claims, publisher, log_lines
):
    claims.faults.add("claim", gexc.ServiceUnavailable("firestore down"))
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.status == 503 and got.body["status"] == "backend_unavailable"
    assert got.body["error"] == "could not record the delivery; retry later"
    assert got.headers["Retry-After"] == str(ingest.RETRY_AFTER_SECONDS)
    assert got.log["cause"] == "ServiceUnavailable" and got.log["severity"] == "ERROR"
    assert publisher.messages == [] and claims.records == {}
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 1


def test_a_publish_failure_releases_the_claim_so_the_retry_publishes(
    deps, claims, publisher, journal, log_lines
):
    publisher.faults.add("publish", gexc.NotFound("no such topic"))
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.status == 503 and got.body["error"] == "could not publish the delivery; retry later"
    assert got.headers["Retry-After"] == str(ingest.RETRY_AFTER_SECONDS)
    assert journal == ["claims.claim", "publisher.publish", "claims.release"]
    assert claims.state_of(envelope["deliveryId"]) is None  # released: no claim blocks the retry
    assert "releaseFailed" not in got.log
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 1


def test_when_the_release_fails_too_the_claim_blocks_until_its_lease_ends(
    deps, claims, publisher, clock, log_lines
):
    publisher.faults.add("publish", gexc.ServiceUnavailable("pubsub down"))
    claims.faults.add("release", gexc.ServiceUnavailable("firestore down"))
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.status == 503 and got.log["releaseFailed"] == "ServiceUnavailable"
    assert claims.state_of(envelope["deliveryId"])["state"] == "claimed"
    assert post(deps, log_lines, envelope).status == 409
    clock.advance(10)
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 1


def test_a_failed_mark_still_answers_200_and_a_retry_after_the_lease_publishes_again(
    deps, claims, publisher, clock, log_lines
):
    claims.faults.add("mark_published", gexc.Aborted("contention"))
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.body["status"] == "accepted"  # the event is on the topic
    assert got.log["markFailed"] == "Aborted"
    assert claims.state_of(envelope["deliveryId"])["state"] == "claimed"
    assert post(deps, log_lines, envelope).status == 409
    clock.advance(10)
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 2  # at least once, never zero
    assert claims.state_of(envelope["deliveryId"])["state"] == "published"


def test_a_create_that_timed_out_but_committed_is_503_and_blocks_until_its_lease_ends(
    publisher, clock, journal, log_lines
):
    claims = FakeDeliveryClaims(timeout=0.2, clock=clock, journal=journal)
    claims.latency["claim"] = 0.3
    claims.commit_on_timeout = True
    deps = IngestDeps(settings(), claims, publisher)
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.status == 503 and got.log["cause"] == "DeadlineExceeded"
    assert journal == ["claims.claim"]  # nothing claimed as far as ingest knows: no release
    assert claims.state_of(envelope["deliveryId"])["state"] == "claimed"
    claims.latency.clear()
    assert post(deps, log_lines, envelope).status == 409
    clock.advance(10)
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 1


# --- the budget --------------------------------------------------------------------------------


def test_a_publish_slower_than_the_budget_is_503_at_the_budget_and_releases_the_claim(
    claims, publisher, journal, log_lines
):
    deps = IngestDeps(settings(budget_seconds=1), claims, publisher)
    publisher.latency = 5.0
    publisher.land_on_timeout = True  # the message landed although the wait timed out
    envelope = delivery()
    started = time.monotonic()
    got = post(deps, log_lines, envelope)
    elapsed = time.monotonic() - started
    assert got.status == 503 and got.log["cause"] == "TimeoutError"
    assert elapsed < 1.5  # the budget, not the publisher's own 10 s timeout
    assert publisher.timeouts[0] <= 1
    assert journal == ["claims.claim", "publisher.publish", "claims.release"]
    assert claims.state_of(envelope["deliveryId"]) is None
    publisher.latency = 0.0
    assert post(deps, log_lines, envelope).body["status"] == "accepted"
    assert len(publisher.messages) == 2  # the documented cost: a duplicate, never a loss


def test_the_budget_is_the_whole_requests_not_each_calls(claims, publisher, log_lines):
    deps = IngestDeps(settings(budget_seconds=1), claims, publisher)
    claims.latency["claim"] = 0.6
    publisher.latency = 0.6  # each well inside 1 s, together past it
    envelope = delivery()
    got = post(deps, log_lines, envelope)
    assert got.status == 503
    assert publisher.timeouts[0] < 0.45  # what was left of the budget after the claim
    assert claims.state_of(envelope["deliveryId"]) is None and publisher.messages == []


def test_the_mark_gets_at_least_its_minimum_time_after_a_slow_publish(claims, publisher, log_lines):
    deps = IngestDeps(settings(budget_seconds=1), claims, publisher)
    publisher.latency = 0.7
    got = post(deps, log_lines, delivery())
    assert got.body["status"] == "accepted"
    [mark_timeout] = claims.mark_timeouts
    assert mark_timeout == MIN_MARK_SECONDS  # 0.3 s were left; the mark gets 0.5 s


def test_logs_name_the_key_by_fingerprint_carry_the_trace_and_never_secrets_or_payload(
    deps, log_lines
):
    envelope = delivery(transcript="[Agent] Hello Zebediah Quux", callerNumber="+16470009999")
    body = encode(envelope)
    headers = signed_headers(body, envelope=envelope)
    trace = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    got = answer(deps, build_request(body, headers=headers | trace), log_lines)
    assert got.status == 200
    assert got.log["keyId"] == verify.key_fingerprint(SECRET)
    assert got.log["logging.googleapis.com/trace"] == (
        "projects/unit-project/traces/105445aa7843bc8bf206b12000100000"
    )
    forged = build_request(body, headers=signed_headers(body, secret="y" * 40))
    assert answer(deps, forged, log_lines).status == 401
    text = json.dumps(log_lines())
    signature = headers["X-TTMA-Signature"].split("v1=")[1]
    for needle in (SECRET, signature, "Zebediah", "6470009999", "Bobby"):
        assert needle not in text


# --- the table itself ----------------------------------------------------------------------------


def test_every_refusal_has_a_status_none_is_410_and_codes_are_unique():
    errors = {
        cls
        for cls in vars(ingest).values()
        if isinstance(cls, type)
        and issubclass(cls, ingest.IngestError)
        and cls is not ingest.IngestError
    }
    assert errors == set(ingest.STATUS_BY_ERROR)
    assert sorted(set(ingest.STATUS_BY_ERROR.values())) == [400, 401, 405, 409, 413, 503]
    assert len({cls.code for cls in errors}) == len(errors)
