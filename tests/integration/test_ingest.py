"""The ingest function through the real functions-framework app and the real emulators."""

from __future__ import annotations

import json
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

import functions_framework
import pytest
from google.api_core import exceptions as gexc

from handlers import ingest as ingest_handler
from handlers import wiring
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PREVIOUS_SECRET, SECRET, delivery, encode, signed_headers
from tests.support.pubsub import pull_all
from ttma_relay.adapters.deliveries import (
    LEASE_MARGIN_SECONDS,
    DeliveryClaims,
    delivery_document_id,
)
from ttma_relay.contract.messages import ATTRIBUTE_NAMES

pytestmark = pytest.mark.emulator
ROOT = REPO_ROOT


@pytest.fixture
def ingest_env(
    emulators: dict[str, str], topic_with_subscription, unique: str, function_env
) -> dict[str, str]:
    topic_id, _ = topic_with_subscription
    return function_env(
        {
            "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
            "TTMA_WEBHOOK_SECRET": SECRET,
            "CALL_EVENTS_TOPIC": topic_id,
            "DELIVERIES_COLLECTION": f"deliveries_{unique}",
            "MAX_BODY_BYTES": str(64 * 1024),
        },
        unset=("TTMA_WEBHOOK_SECRET_PREVIOUS",),
    )


@pytest.fixture
def client(ingest_env):
    app = functions_framework.create_app(target="ingest", source=str(ROOT / "main.py"))
    return app.test_client()


@pytest.fixture
def messages(subscriber_client, topic_with_subscription):
    _, subscription = topic_with_subscription
    return lambda settle=0.5: pull_all(subscriber_client, subscription, settle=settle)


def post(client, envelope: Any = None, *, body: bytes | None = None, **sign_options):
    body = encode(envelope) if body is None else body
    headers = signed_headers(body, **sign_options)
    return client.post("/", data=body, headers=headers)


def delivery_state(deps_obj, delivery_id: str) -> dict[str, Any] | None:
    return deps_obj.claims.state_of(delivery_id)


# --- accepted, duplicates, message contract --------------------------------------------------


def test_accepted_delivery_is_published_with_the_exact_bytes_and_contract_attributes(
    client, messages
):
    envelope = delivery()
    body = encode(envelope)
    response = client.post("/", data=body, headers=signed_headers(body, envelope=envelope))

    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted", "deliveryId": envelope["deliveryId"]}
    [message] = messages()
    assert message.data == body
    assert dict(message.attributes) == {
        "event": "call.ended",
        "deliveryId": envelope["deliveryId"],
        "callId": envelope["data"]["id"],
        "direction": "outbound",
        "status": "completed",
        "endedReason": "botHangup",
        "recordingAvailable": "true",
        "hasTranscript": "true",
        "endedAt": "2026-05-25T14:35:12.000Z",
        "source": "webhook",
        "schemaVersion": "1",
        "Content-Type": "application/json",
    }
    assert set(message.attributes) == set(ATTRIBUTE_NAMES)
    state = wiring.ingest_deps().claims.state_of(envelope["deliveryId"])
    assert state["state"] == "published"
    assert state["messageId"] == message.message_id


def test_sequential_duplicates_answer_200_and_publish_once(client, messages):
    envelope = delivery()
    first = post(client, envelope)
    second = post(client, envelope)
    third = post(client, envelope)

    assert first.status_code == 200 and first.get_json()["status"] == "accepted"
    for duplicate in (second, third):
        assert duplicate.status_code == 200
        assert duplicate.get_json() == {"status": "duplicate", "deliveryId": envelope["deliveryId"]}
    assert len(messages()) == 1


def test_nullable_fields_and_unknown_values_are_accepted(client, messages):
    envelope = delivery(endedReason=None, transcript=None, task=None, hasTranscript=False)
    envelope["event"] = "call.summarized"  # an event type this version does not know
    envelope["data"]["endedReason"] = None
    other = delivery(endedReason="quantumDecoherence", recordingAvailable=False)

    assert post(client, envelope).status_code == 200
    assert post(client, other).status_code == 200
    by_delivery = {m.attributes["deliveryId"]: m for m in messages()}
    assert by_delivery[envelope["deliveryId"]].attributes["endedReason"] == ""
    assert by_delivery[envelope["deliveryId"]].attributes["event"] == "call.summarized"
    assert by_delivery[envelope["deliveryId"]].attributes["hasTranscript"] == "false"
    assert by_delivery[other["deliveryId"]].attributes["endedReason"] == "quantumDecoherence"
    assert by_delivery[other["deliveryId"]].attributes["recordingAvailable"] == "false"


def test_delivery_id_unsafe_as_a_document_id_is_still_deduplicated(client, messages):
    envelope = delivery()
    envelope["deliveryId"] = "weird/../__id__"
    assert post(client, envelope).status_code == 200
    assert post(client, envelope).get_json()["status"] == "duplicate"
    assert len(messages()) == 1
    assert delivery_document_id("weird/../__id__").startswith("sha256-")


# --- refusals: every status of the policy ----------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_non_post_is_405_with_allow_header(client, method, messages):
    response = client.open("/", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["status"] == "method_not_allowed"
    assert messages(0.2) == []


def test_body_over_the_limit_is_413(client, ingest_env, messages):
    envelope = delivery(transcript="x" * int(ingest_env["MAX_BODY_BYTES"]))
    response = post(client, envelope)
    assert response.status_code == 413
    assert response.get_json()["status"] == "body_too_large"
    assert messages(0.2) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"event":"call.ended","data":{"id":"v3:x"}}', "deliveryId is required"),
        (b'{"deliveryId":"","data":{"id":"v3:x"}}', "deliveryId is required"),
        (b'{"deliveryId":7,"data":{"id":"v3:x"}}', "deliveryId is required"),
        (b'{"deliveryId":"d1"}', "data is required"),
        (b'{"deliveryId":"d1","data":[]}', "data is required"),
        (b'{"deliveryId":"d1","data":{}}', "data.id is required"),
        (b'{"deliveryId":"d1","data":{"id":null}}', "data.id is required"),
        (b'{"deliveryId":"d1","event":5,"data":{"id":"v3:x"}}', "event must be a string"),
    ],
)
def test_malformed_signed_body_is_400_and_says_what_is_wrong(client, body, reason, messages):
    response = post(client, body=body)
    assert response.status_code == 400
    assert response.get_json()["status"] == "malformed_delivery"
    assert reason in response.get_json()["error"]
    assert messages(0.2) == []


def hostile(text: str) -> bytes:
    """A valid delivery's JSON with ``text`` spliced in as the first member of ``data``."""
    body = encode(delivery())
    return body.replace(b'"data":{', b'"data":{' + text.encode() + b",", 1)


def with_delivery_id(raw_id: str) -> bytes:
    envelope = delivery()
    return encode(envelope).replace(json.dumps(envelope["deliveryId"]).encode(), raw_id.encode())


# Issue 13: correctly signed bodies that crashed ingest (500) or were published although the
# policy says strict UTF-8 JSON. Each is a 400 malformed_delivery saying why, nothing published.
HOSTILE_BODIES = {
    "lone_surrogate_in_delivery_id": (with_delivery_id(r'"abc\ud800"'), "unpaired surrogate"),
    "lone_low_surrogate_in_call_id": (
        encode(delivery()).replace(b'"id":"v3:', b'"id":"\\udc00v3:', 1),
        "unpaired surrogate",
    ),
    "lone_surrogate_in_transcript": (  # json.dumps writes a lone surrogate as its escape
        encode(delivery(transcript="[Agent] hi \ud83d"), ascii_only=True),
        "unpaired surrogate",
    ),
    "lone_surrogate_in_a_key": (hostile(r'"\udfff":1'), "unpaired surrogate"),
    "integer_of_4301_digits": (hostile('"durationSeconds":' + "9" * 4301), "too many digits"),
    "integer_of_9000_digits_in_a_list": (hostile('"n":[1,' + "7" * 9000 + "]"), "too many digits"),
    "nesting_65_levels": (hostile('"deep":' + "[" * 64 + "]" * 64), "nested deeper than 64"),
    "nesting_past_the_recursion_limit": (
        hostile('"deep":' + "[" * 20000 + "]" * 20000),
        "nested deeper than 64",
    ),
    "duplicate_delivery_id": (
        encode(delivery()).replace(b"{", b'{"deliveryId":"first",', 1),
        "duplicate key",
    ),
    "duplicate_nested_key": (hostile('"status":"failed"'), "duplicate key"),
    "nan": (hostile('"durationSeconds":NaN'), "NaN is not JSON"),
    "infinity": (hostile('"durationSeconds":-Infinity'), "-Infinity is not JSON"),
    "utf8_bom": (b"\xef\xbb\xbf" + encode(delivery()), "byte order mark"),
    "utf16_with_bom": (json.dumps(delivery()).encode("utf-16"), "not UTF-8"),
    "utf16_little_endian_no_bom": (json.dumps(delivery()).encode("utf-16-le"), "syntax"),
    "utf32": (json.dumps(delivery()).encode("utf-32"), "not UTF-8"),
    "encoded_surrogate_bytes": (
        hostile('"transcript":"x"').replace(b'"x"', b'"\xed\xa0\x80"'),
        "not UTF-8",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_signed_body_is_400_never_500_and_nothing_is_published(client, case, messages):
    body, reason = HOSTILE_BODIES[case]
    response = post(client, body=body)
    assert response.status_code == 400, response.get_data()[:200]
    assert response.get_json()["status"] == "malformed_delivery"
    assert reason in response.get_json()["error"]
    assert "deliveryId" not in response.get_json()
    assert messages(0.2) == []


def test_paired_surrogate_escapes_and_moderate_nesting_are_accepted(client, messages):
    body = hostile(r'"note":"\ud83d\ude00","deep":' + "[" * 60 + "]" * 60)
    assert post(client, body=body).status_code == 200
    [message] = messages()
    assert message.data == body  # the exact signed bytes, escapes and all


@pytest.mark.parametrize("case", ["upper", "mixed"])
def test_uppercase_hex_signature_is_accepted(client, case, messages):
    """Hex digits in either case name the same digest (verify/'s docstring; the vendor's
    reference verifier decodes with Buffer.from(v1, "hex"))."""
    envelope = delivery()
    body = encode(envelope)
    headers = signed_headers(body, envelope=envelope)
    prefix, digest = headers["X-TTMA-Signature"].split("v1=")
    digest = digest.upper() if case == "upper" else digest[:32].upper() + digest[32:]
    headers["X-TTMA-Signature"] = f"{prefix}v1={digest}"
    assert client.post("/", data=body, headers=headers).status_code == 200
    assert len(messages()) == 1


def test_content_type_is_not_what_decides(client, messages):
    """The signed bytes decide: a JSON body is accepted whatever Content-Type says, and a
    charset parameter does not make a UTF-16 body acceptable."""
    envelope = delivery()
    body = encode(envelope)
    headers = {**signed_headers(body, envelope=envelope), "Content-Type": "text/plain"}
    assert client.post("/", data=body, headers=headers).status_code == 200
    utf16 = json.dumps(delivery()).encode("utf-16")
    headers = {**signed_headers(utf16), "Content-Type": "application/json; charset=utf-16"}
    assert client.post("/", data=utf16, headers=headers).status_code == 400
    assert len(messages()) == 1


@pytest.mark.parametrize("header", ["X-TTMA-Delivery-Id", "X-TTMA-Event"])
def test_header_disagreeing_with_body_is_400(client, header, messages):
    envelope = delivery()
    body = encode(envelope)
    headers = signed_headers(body, envelope=envelope)
    headers[header] = "something-else"
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["status"] == "header_body_mismatch"
    assert messages(0.2) == []


def test_bad_signatures_are_401(client, messages):
    envelope = delivery()
    body = encode(envelope)
    now = int(time.time())
    cases = {
        "missing": {"Content-Type": "application/json"},
        "wrong secret": signed_headers(body, secret="x" * 40),
        "stale": signed_headers(body, timestamp=now - 301),
        "future": signed_headers(body, timestamp=now + 301),
        "garbage": {"X-TTMA-Signature": "t=abc,v1=zz"},
    }
    for name, headers in cases.items():
        response = client.post("/", data=body, headers=headers)
        assert response.status_code == 401, name
        assert response.get_json()["status"] == "invalid_signature", name
    tampered = client.post("/", data=body + b" ", headers=signed_headers(body))
    assert tampered.status_code == 401
    assert messages(0.2) == []


def test_timestamps_just_inside_the_tolerance_are_accepted(client):
    now = int(time.time())
    for skew in (-290, 290):
        assert post(client, delivery(), timestamp=now + skew).status_code == 200


def test_secret_rotation_accepts_previous_only_while_configured(ingest_env, function_env):
    envelope = delivery()
    function_env({"TTMA_WEBHOOK_SECRET_PREVIOUS": PREVIOUS_SECRET})
    app = functions_framework.create_app(target="ingest", source=str(ROOT / "main.py"))
    client = app.test_client()
    assert post(client, envelope, secret=PREVIOUS_SECRET).status_code == 200
    assert post(client, delivery(), secret=SECRET).status_code == 200

    function_env({}, unset=("TTMA_WEBHOOK_SECRET_PREVIOUS",))
    response = post(client, delivery(), secret=PREVIOUS_SECRET)
    assert response.status_code == 401


# --- in flight and lease takeover ------------------------------------------------------------


def test_in_flight_duplicate_is_409_with_retry_after_never_2xx(client, messages):
    envelope = delivery()
    claims = wiring.ingest_deps().claims
    claims.claim(envelope["deliveryId"], envelope["data"]["id"])  # another request holds it

    response = post(client, envelope)
    assert response.status_code == 409
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert messages(0.2) == []


def test_expired_claim_is_taken_over_and_published(client, messages):
    envelope = delivery()
    current = wiring.ingest_deps()
    dead = DeliveryClaims(current.claims._client, current.claims._collection, lease_seconds=0.5)
    dead.claim(envelope["deliveryId"], envelope["data"]["id"])  # a request that died
    time.sleep(0.6)  # its lease (recorded in the claim) runs out

    response = post(client, envelope)
    assert response.status_code == 200
    assert response.get_json()["status"] == "accepted"
    assert len(messages()) == 1
    record = current.claims.state_of(envelope["deliveryId"])
    assert record["attempts"] == 2 and record["state"] == "published"


def test_the_lease_is_the_budget_plus_a_margin_and_409_says_how_long(client, messages):
    """A claim left by a dead request blocks the sender's retries for ~10 s, not 30: with the
    sandbox's 1+2+4+8+16 s schedule the fourth retry (t=15 s) takes it over."""
    settings = wiring.ingest_deps().settings
    claims = wiring.ingest_deps().claims
    assert claims.lease_seconds == settings.budget_seconds + LEASE_MARGIN_SECONDS == 10
    envelope = delivery()
    claims.claim(envelope["deliveryId"], envelope["data"]["id"])
    response = post(client, envelope)
    assert response.status_code == 409
    assert 9 <= int(response.headers["Retry-After"]) <= 10
    assert claims.state_of(envelope["deliveryId"])["leaseSeconds"] == 10


class Slow:
    """Delegates to a real object; ``method`` returns ``seconds`` late (after doing its work)."""

    def __init__(self, real: Any, method: str, seconds: float) -> None:
        self._real, self._method, self._seconds = real, method, seconds

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._method:
            return attribute

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            time.sleep(self._seconds)
            return result

        return wrapper


def test_past_the_budget_ingest_answers_503_releases_the_claim_never_a_late_200(
    client, messages, monkeypatch
):
    real = wiring.ingest_deps()
    budget = replace(real.settings, budget_seconds=1)
    inject(monkeypatch, settings=budget, claims=Slow(real.claims, "claim", 1.2))
    envelope = delivery()
    started = time.monotonic()
    response = post(client, envelope)
    assert response.status_code == 503
    assert response.get_json()["status"] == "backend_unavailable"
    assert time.monotonic() - started < 2.5  # the budget, not Firestore's or Pub/Sub's timeout
    assert real.claims.state_of(envelope["deliveryId"]) is None  # the claim was made: released
    assert messages(0.3) == []


# --- fault injection at each step ------------------------------------------------------------


class Faulty:
    """Delegates to a real object, but the first ``times`` calls of ``method`` fail."""

    def __init__(
        self,
        real: Any,
        method: str,
        error: BaseException,
        *,
        times: int = 1,
        after_real_call: bool = False,
    ) -> None:
        self._real, self._method, self._error = real, method, error
        self._left, self._after = times, after_real_call

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._method:
            return attribute

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._left > 0:
                self._left -= 1
                if self._after:
                    attribute(*args, **kwargs)
                raise self._error
            return attribute(*args, **kwargs)

        return wrapper


def inject(monkeypatch, **replacements: Any) -> Any:
    real = wiring.ingest_deps()
    faulty = replace(real, **replacements)
    monkeypatch.setitem(wiring._cache, "ingest", faulty)
    return real


def test_firestore_create_failure_is_503_and_the_retry_publishes_once(
    client, messages, monkeypatch
):
    real = wiring.ingest_deps()
    inject(monkeypatch, claims=Faulty(real.claims, "claim", gexc.ServiceUnavailable("down")))
    envelope = delivery()

    first = post(client, envelope)
    assert first.status_code == 503
    assert first.headers["Retry-After"] == str(ingest_handler.RETRY_AFTER_SECONDS)
    assert real.claims.state_of(envelope["deliveryId"]) is None
    assert messages(0.2) == []

    retry = post(client, envelope)
    assert retry.status_code == 200
    assert len(messages()) == 1


def test_publish_failure_releases_the_claim_and_the_retry_publishes_once(
    client, messages, monkeypatch
):
    real = wiring.ingest_deps()
    inject(monkeypatch, publisher=Faulty(real.publisher, "publish", gexc.NotFound("no topic")))
    envelope = delivery()

    first = post(client, envelope)
    assert first.status_code == 503
    assert "Retry-After" in first.headers
    assert real.claims.state_of(envelope["deliveryId"]) is None  # released: no blocking claim
    assert messages(0.2) == []

    retry = post(client, envelope)
    assert retry.status_code == 200
    assert len(messages()) == 1


def test_publish_timeout_after_the_message_landed_is_503_and_retry_is_at_least_once(
    client, messages, monkeypatch
):
    real = wiring.ingest_deps()
    inject(
        monkeypatch,
        publisher=Faulty(real.publisher, "publish", FutureTimeout(), after_real_call=True),
    )
    envelope = delivery()

    assert post(client, envelope).status_code == 503
    retry = post(client, envelope)
    assert retry.status_code == 200
    published = messages()
    assert len(published) == 2  # at least once: never zero
    assert {m.attributes["deliveryId"] for m in published} == {envelope["deliveryId"]}


def test_publish_and_release_both_failing_leave_a_claim_that_expires(client, messages, monkeypatch):
    real = wiring.ingest_deps()
    short = DeliveryClaims(real.claims._client, real.claims._collection, lease_seconds=2.0)
    claims = Faulty(short, "release", gexc.ServiceUnavailable("down"))
    inject(
        monkeypatch,
        claims=claims,
        publisher=Faulty(real.publisher, "publish", gexc.ServiceUnavailable("down")),
    )
    envelope = delivery()

    assert post(client, envelope).status_code == 503
    assert real.claims.state_of(envelope["deliveryId"])["state"] == "claimed"
    assert post(client, envelope).status_code == 409  # the stale claim blocks until its lease ends
    time.sleep(2.1)
    assert post(client, envelope).status_code == 200
    assert len(messages()) == 1


def test_mark_published_failure_still_answers_200_and_a_late_retry_republishes(
    client, messages, monkeypatch
):
    real = wiring.ingest_deps()
    short = DeliveryClaims(real.claims._client, real.claims._collection, lease_seconds=2.0)
    inject(monkeypatch, claims=Faulty(short, "mark_published", gexc.Aborted("contention")))
    envelope = delivery()

    first = post(client, envelope)
    assert first.status_code == 200  # the event is on the topic
    assert len(messages()) == 1
    assert post(client, envelope).status_code == 409  # within the lease: retry later
    time.sleep(2.1)
    assert post(client, envelope).status_code == 200
    assert len(messages()) == 1  # republished: at least once
    assert real.claims.state_of(envelope["deliveryId"])["state"] == "published"


# --- the status table -------------------------------------------------------------------------


def test_status_table_covers_every_error_and_never_410():
    errors = {
        cls
        for cls in vars(ingest_handler).values()
        if isinstance(cls, type)
        and issubclass(cls, ingest_handler.IngestError)
        and cls is not ingest_handler.IngestError
    }
    assert errors == set(ingest_handler.STATUS_BY_ERROR)
    assert 410 not in ingest_handler.STATUS_BY_ERROR.values()
    assert sorted(set(ingest_handler.STATUS_BY_ERROR.values())) == [400, 401, 405, 409, 413, 503]
    codes = [cls.code for cls in errors]
    assert len(codes) == len(set(codes))


def test_response_bodies_are_json_and_never_echo_the_payload(client):
    envelope = delivery()
    body = encode(envelope)
    response = client.post("/", data=body, headers={"X-TTMA-Signature": "t=1,v1=" + "a" * 64})
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Bobby" not in text and "+1647" not in text
    assert json.loads(text)["status"] == "invalid_signature"


def test_a_signed_self_test_is_answered_200_and_never_claimed_nor_published(client, messages):
    envelope = {"event": ingest_handler.SELF_TEST_EVENT, "deliveryId": "self-test:doctor-1",
                "timestamp": "2026-12-01T00:00:00.000Z", "data": {"id": "self-test"}}  # fmt: skip
    response = post(client, envelope)
    assert response.status_code == 200
    assert response.get_json() == {"status": "self_test", "deliveryId": "self-test:doctor-1"}
    assert wiring.ingest_deps().claims.state_of("self-test:doctor-1") is None
    assert messages(0.3) == []
    tampered = post(client, envelope, secret="a-wrong-secret-of-at-least-32-characters")  # noqa: S106  a deliberately wrong test secret
    assert tampered.status_code == 401
