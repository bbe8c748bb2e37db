"""The published message schema (docs/schema/v1/) against the vendor's examples and our messages.

What must validate: the vendor's documented examples, the golden delivery, every call shape the
sandbox simulates, reconcile's envelopes, unknown fields at any level, unknown end reasons and
event types. What must not: wrong types, bad attributes, attributes that disagree with the
data, so the schema is not vacuous. One definition of the end reasons and attribute names.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.fixtures.stack import _check_schema_tap
from tests.support import message_schema
from tests.support.message_schema import (
    ATTRIBUTES_SCHEMA_FILE,
    DATA_SCHEMA_FILE,
    SCHEMA_DIR,
    load_schema,
    validate_call,
    validate_message,
)
from tests.support.paths import TEST_DATA
from tests.support.payloads import GOLDEN, encode
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.contract.ended_reasons import KNOWN_ENDED_REASONS
from ttma_relay.contract.messages import (
    ATTRIBUTE_NAMES,
    CONTENT_TYPE,
    SCHEMA_VERSION,
    message_attributes,
    reconcile_envelope,
)
from ttma_relay.contract.sample_delivery import sample_delivery
from ttma_sandbox.calls import DIRECTIONS, END_REASONS, mixed_batch_choices, new_call
from ttma_sandbox.state import SandboxState

DATA_SCHEMA = load_schema(DATA_SCHEMA_FILE)
ATTRIBUTES_SCHEMA = load_schema(ATTRIBUTES_SCHEMA_FILE)
GOLDEN_FILE = TEST_DATA / "call_ended.json"
PROPERTY_SETTINGS = settings(max_examples=200)  # the rest: the suite profile (conftest)

# The vendor's documented examples (shared/vendor/call-results-api.md), transcribed field by
# field. The doc truncates some values with a literal "..." ("v3:abc123...", "a1b2c3d4-...",
# "[Agent] Hi, this is Sol...", "goal": "...", "facts": { ... }); those placeholders are
# replaced by plausible values of the same kind, marked "placeholder" below. Nothing else is
# changed: the webhook example's short usage and quality objects are kept as documented.
VENDOR_GET_CALL_RESPONSE: dict[str, Any] = {
    "data": {
        "id": "v3:abc123def456",  # placeholder for "v3:abc123..."
        "direction": "outbound",
        "status": "completed",
        "endedReason": "callerHangup",
        "callerNumber": "+16473705600",
        "calledNumber": "+16475551234",
        "startedAt": "2026-05-25T14:30:00.000Z",
        "endedAt": "2026-05-25T14:35:12.000Z",
        "durationSeconds": 312,
        "recordingAvailable": True,
        "hasTranscript": True,
        # placeholder for "[Agent] Hi, this is Sol... [Caller] Yeah..."
        "transcript": "[Agent] Hi, this is Sol from Acme. [Caller] Yeah, speaking.",
        "task": {
            "goal": "Collect $154.56 from Bobby",
            "script": "debt-collection",
            "facts": {"debtor_name": "Bobby", "amount_due": "$154.56"},
            "escalation": None,
        },
        "usage": {"turnCount": 8, "inputTokens": 4521, "outputTokens": 2130},
        "quality": {"grade": "A", "p50ResponseLatencyMs": 340, "p95ResponseLatencyMs": 890},
    }
}
VENDOR_WEBHOOK_PAYLOAD: dict[str, Any] = {
    "event": "call.ended",
    "deliveryId": "a1b2c3d4-0000-4000-8000-000000000001",  # placeholder for "a1b2c3d4-..."
    "timestamp": "2026-05-25T14:35:12.000Z",
    "data": {
        "id": "v3:abc123def456",  # placeholder for "v3:abc123..."
        "direction": "outbound",
        "status": "completed",
        "endedReason": "botHangup",
        "callerNumber": "+16473705600",
        "calledNumber": "+16475551234",
        "startedAt": "2026-05-25T14:30:00.000Z",
        "endedAt": "2026-05-25T14:35:12.000Z",
        "durationSeconds": 312,
        "recordingAvailable": True,
        "hasTranscript": True,
        "transcript": "[Agent] Hi, this is Sol from Acme.",  # placeholder for "...Sol..."
        # placeholders for "goal": "..." and "facts": { ... }
        "task": {"goal": "Collect $154.56 from Bobby", "facts": {"debtor_name": "Bobby"}},
        "usage": {"turnCount": 8},
        "quality": {"grade": "A"},
    },
}


def check_envelope(envelope: dict[str, Any], source: str = "webhook") -> None:
    validate_message(encode(envelope), message_attributes(envelope, source))  # type: ignore[arg-type]


def webhook_envelope(call: dict[str, Any]) -> dict[str, Any]:
    """The envelope the sandbox's webhook sender wraps a call in."""
    return {"event": "call.ended", "deliveryId": str(uuid.uuid4()), "timestamp": call["endedAt"],
            "data": call}  # fmt: skip


def golden() -> dict[str, Any]:
    return copy.deepcopy(GOLDEN)


def walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# --- the schemas themselves ------------------------------------------------------------------


@pytest.mark.parametrize("path", [DATA_SCHEMA_FILE, ATTRIBUTES_SCHEMA_FILE], ids=lambda p: p.name)
def test_each_schema_is_valid_draft_2020_12_with_a_versioned_id(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == (
        f"https://github.com/ttma-relay/ttma-relay/docs/schema/v{SCHEMA_VERSION}/{path.name}"
    )
    assert path.parent == SCHEMA_DIR and SCHEMA_DIR.name == f"v{SCHEMA_VERSION}"


def test_the_attribute_schema_pins_this_version_and_content_type():
    properties = ATTRIBUTES_SCHEMA["properties"]
    assert properties["schemaVersion"] == {**properties["schemaVersion"], "const": SCHEMA_VERSION}
    assert properties["Content-Type"]["const"] == CONTENT_TYPE
    assert properties["source"]["enum"] == ["webhook", "reconcile", "replay"]
    for flag in ("recordingAvailable", "hasTranscript"):
        assert properties[flag]["enum"] == ["true", "false"]


def test_the_known_end_reasons_are_the_projects_one_list():
    alternatives = DATA_SCHEMA["$defs"]["call"]["properties"]["endedReason"]["anyOf"]
    [known] = [alt["enum"] for alt in alternatives if "enum" in alt]
    assert tuple(known) == KNOWN_ENDED_REASONS
    assert {"type": "string"} in [{"type": a.get("type")} for a in alternatives]  # open list
    assert {"type": "null"} in [{"type": a.get("type")} for a in alternatives]  # old calls


def test_the_required_attributes_are_the_projects_attribute_names():
    assert tuple(ATTRIBUTES_SCHEMA["required"]) == ATTRIBUTE_NAMES
    assert tuple(ATTRIBUTES_SCHEMA["properties"]) == ATTRIBUTE_NAMES
    assert ATTRIBUTES_SCHEMA["additionalProperties"] == {"type": "string"}
    assert all(
        spec.get("type") == "string" or all(isinstance(v, str) for v in spec.get("enum", [0]))
        or isinstance(spec.get("const"), str)
        for spec in ATTRIBUTES_SCHEMA["properties"].values()
    )  # fmt: skip


def test_no_object_in_the_data_schema_is_closed_and_only_ids_are_required():
    assert DATA_SCHEMA["if"]["required"] == ["event"]  # the condition: event is call.ended
    for node in walk({key: value for key, value in DATA_SCHEMA.items() if key != "if"}):
        if isinstance(node, dict):
            assert node.get("additionalProperties", True) is True, node.get("title")
            assert "unevaluatedProperties" not in node
            assert node.get("required", ["deliveryId", "data"]) in (["deliveryId", "data"],
                                                                    ["id"])  # fmt: skip


def test_formats_are_annotations_only():
    """``format`` is not asserted: a consumer's validator must not reject on it either."""
    call = golden()["data"] | {"startedAt": "yesterday", "endedAt": "not a date"}
    validate_call(call)


# --- what must validate ------------------------------------------------------------------------


def test_the_vendors_single_call_response_data_is_a_valid_call():
    validate_call(VENDOR_GET_CALL_RESPONSE["data"])


def test_the_vendors_single_call_response_as_reconcile_publishes_it_is_a_valid_message():
    body = reconcile_envelope(VENDOR_GET_CALL_RESPONSE["data"])
    validate_message(body, message_attributes(json.loads(body), "reconcile"))


def test_the_vendors_webhook_payload_is_a_valid_message():
    check_envelope(VENDOR_WEBHOOK_PAYLOAD)
    validate_call(VENDOR_WEBHOOK_PAYLOAD["data"])


def test_a_list_response_call_without_its_transcript_is_a_valid_call():
    call = dict(VENDOR_GET_CALL_RESPONSE["data"])
    del call["transcript"]  # "The transcript field is omitted from list responses"
    validate_call(call)
    check_envelope(webhook_envelope(call), "replay")


def test_the_golden_delivery_bytes_are_a_valid_message():
    raw = GOLDEN_FILE.read_bytes()
    validate_message(raw, message_attributes(json.loads(raw), "webhook"))


def test_the_documented_nullable_fields_may_be_null():
    check_envelope(webhook_envelope(golden()["data"] | {
        "endedReason": None, "transcript": None, "hasTranscript": False, "task": None,
    }))  # fmt: skip


def test_a_bare_envelope_with_only_what_ingest_requires_is_valid():
    check_envelope({"deliveryId": "d1", "data": {"id": "v3:x"}})
    check_envelope({"event": "call.ended", "deliveryId": "d1", "data": {"id": "v3:x"}})


def test_the_cli_sample_delivery_is_a_valid_message():
    check_envelope(sample_delivery())


def test_every_call_shape_the_sandbox_simulates_is_a_valid_message():
    state = SandboxState()
    calls = [call for seed in (0, 1, 2) for call in state.simulate_calls(34, seed=seed)]
    calls.append(state.simulate_call(direction="inbound", ended_reason="setupFailed"))
    for call in calls:
        validate_call(call)
        check_envelope(webhook_envelope(call))
    # the shapes the brief of this test names were really among them
    assert any(c["endedReason"] is None and c["transcript"] is None for c in calls)  # old-style
    assert any(c["direction"] == "inbound" and c["task"] is None for c in calls)
    assert any(c["hasTranscript"] is False for c in calls)
    assert {c["endedReason"] for c in calls} >= set(KNOWN_ENDED_REASONS)


def test_every_combination_of_new_call_choices_is_a_valid_call():
    rng = random.Random(7)  # noqa: S311  seeded test data, not a secret
    ended = datetime(2026, 5, 25, 14, 35, 12, tzinfo=UTC)
    options = itertools.product(DIRECTIONS, (*END_REASONS, None), (True, False), (True, False),
                                (0, 312))  # fmt: skip
    count = 0
    for direction, reason, shipped, old_style, duration in options:
        for with_task in (False, True) if direction == "outbound" else (False,):
            call = new_call(
                rng, call_id=f"v3:combo-{count}", agent_number="+16475550100",
                direction=direction, ended_reason=reason, ended_at=ended,
                duration_seconds=duration, transcript_shipped=shipped, with_task=with_task,
                old_style=old_style,
            )  # fmt: skip
            validate_call(call)
            check_envelope(webhook_envelope(call))
            count += 1
    assert count == 2 * 12 * 2 * 2 * 2 + 12 * 2 * 2 * 2  # outbound with and without a task
    assert len(mixed_batch_choices(34, random.Random(0))) == 34  # noqa: S311  seeded test data, not a secret


@pytest.mark.parametrize("call", [
    GOLDEN["data"],
    {"id": "v3:only-an-id"},
    GOLDEN["data"] | {"endedReason": None, "transcript": None, "task": None},
], ids=["golden", "id-only", "old-inbound"])  # fmt: skip
def test_reconcile_envelopes_are_valid_messages(call):
    body = reconcile_envelope(call, now=datetime(2026, 5, 25, 14, 40, tzinfo=UTC))
    envelope = json.loads(body)
    assert envelope["deliveryId"] == f"reconcile:{call['id']}"
    validate_message(body, message_attributes(envelope, "reconcile"))


def test_a_long_unknown_end_reason_is_cut_in_the_attribute_and_still_agrees():
    check_envelope(webhook_envelope(golden()["data"] | {"endedReason": "é" * 2000}))


# --- forward compatibility (properties) -------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
# Where an unknown field can appear, and the names already documented there.
LEVELS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "envelope": ((), set(DATA_SCHEMA["properties"])),
    "data": (("data",), set(DATA_SCHEMA["$defs"]["call"]["properties"])),
    "task": (("data", "task"), set(DATA_SCHEMA["$defs"]["task"]["properties"])),
    "task.facts": (("data", "task", "facts"), set()),
    "usage": (("data", "usage"), set(DATA_SCHEMA["$defs"]["usage"]["properties"])),
    "quality": (("data", "quality"), set(DATA_SCHEMA["$defs"]["quality"]["properties"])),
}


@st.composite
def extra_fields(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    fields = []
    for _ in range(draw(st.integers(1, 6))):
        level = draw(st.sampled_from(sorted(LEVELS)))
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n, lv=level: n not in
                                                             LEVELS[lv][1]))  # fmt: skip
        fields.append((level, name, draw(JSON_VALUES)))
    return fields


@PROPERTY_SETTINGS
@given(extra_fields())
def test_unknown_fields_at_any_level_stay_valid(fields):
    envelope = golden()
    for level, name, value in fields:
        target = envelope
        for step in LEVELS[level][0]:
            target = target[step]
        target[name] = value
    check_envelope(envelope)


@PROPERTY_SETTINGS
@given(st.text(max_size=40).filter(lambda r: r not in KNOWN_ENDED_REASONS))
def test_unknown_end_reasons_stay_valid(reason):
    envelope = golden()
    envelope["data"]["endedReason"] = reason
    check_envelope(envelope)
    validate_call(envelope["data"])


@PROPERTY_SETTINGS
@given(
    st.text(max_size=30).filter(lambda e: e != "call.ended"),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k != "id"), JSON_VALUES, max_size=5),
)
def test_unknown_event_types_are_valid_with_any_data_that_has_an_id(event, data):
    check_envelope({"event": event, "deliveryId": str(uuid.uuid4()), "timestamp": "x",
                    "data": {"id": "v3:future", **data}})  # fmt: skip


# --- what must not validate ------------------------------------------------------------------


def set_path(envelope: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = envelope
    for step in parents:
        target = target[step]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value


DELETE = object()
BAD_DATA = [
    ("data.durationSeconds", "312", "$.data.durationSeconds: expected number, got string"),
    ("data.recordingAvailable", "yes", "$.data.recordingAvailable: expected boolean"),
    ("data.hasTranscript", 1, "$.data.hasTranscript: expected boolean, got integer"),
    ("data.endedReason", 5, "$.data.endedReason: matches no alternative"),
    ("data.transcript", ["[Agent] hi"], "$.data.transcript: expected string or null"),
    ("data.task", "debt-collection", "$.data.task: matches no alternative"),
    ("data.task.facts", ["Bobby"], "facts: expected object, got array"),
    ("data.usage", None, "$.data.usage: expected object, got null"),
    ("data.usage.turnCount", "8", "$.data.usage.turnCount: expected integer, got string"),
    ("data.quality.p50ResponseLatencyMs", "340ms", "$.data.quality.p50ResponseLatencyMs"),
    ("data.callerNumber", 16473705600, "$.data.callerNumber: expected string, got integer"),
    ("data.endedAt", None, "$.data.endedAt: expected string, got null"),
    ("data.id", "", "$.data.id: does not match the pattern"),
    ("data.id", DELETE, "$.data: missing required 'id'"),
    ("deliveryId", " \t", "$.deliveryId: does not match the pattern"),
    ("deliveryId", DELETE, "$: missing required 'deliveryId'"),
    ("event", 7, "$.event: expected string or null, got integer"),
    ("data", [], "$.data: expected object, got array"),
]


@pytest.mark.parametrize(("path", "value", "reason"), BAD_DATA,
                         ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD_DATA])  # fmt: skip
def test_wrong_data_is_rejected_with_its_path_and_reason(path, value, reason):
    envelope = golden()
    set_path(envelope, path, value)
    assert not message_schema.data_validator().is_valid(envelope)
    attributes = message_attributes(golden(), "webhook")  # valid ones: only the data is wrong
    with pytest.raises(AssertionError, match="does not match docs/schema/v1") as raised:
        validate_message(encode(envelope), attributes)
    assert reason in str(raised.value)


BAD_ATTRIBUTES = [
    ("recordingAvailable", "yes", "$.recordingAvailable: expected one of ['true', 'false']"),
    ("hasTranscript", "True", "$.hasTranscript: expected one of ['true', 'false']"),
    ("callId", DELETE, "$: missing required 'callId'"),
    ("endedReason", None, "$.endedReason: expected string, got null"),
    ("durationSeconds", 312, "$.durationSeconds: expected string, got integer"),
    ("schemaVersion", "2", "$.schemaVersion: expected '1'"),
    ("schemaVersion", 1, "$.schemaVersion: expected '1', got another integer"),
    ("source", "email", "$.source: expected one of ['webhook', 'reconcile', 'replay']"),
    ("Content-Type", "text/plain", "$['Content-Type']: expected 'application/json'"),
    ("deliveryId", "", "$.deliveryId: does not match the pattern"),
]


@pytest.mark.parametrize(("name", "value", "reason"), BAD_ATTRIBUTES,
                         ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD_ATTRIBUTES])  # fmt: skip
def test_wrong_attributes_are_rejected_with_their_name_and_reason(name, value, reason):
    envelope = golden()
    attributes: dict[str, Any] = message_attributes(envelope, "webhook")
    if value is DELETE:
        del attributes[name]
    else:
        attributes[name] = value
    assert not message_schema.attributes_validator().is_valid(attributes)
    with pytest.raises(AssertionError, match="attributes") as raised:
        validate_message(encode(envelope), attributes)
    assert reason in str(raised.value)


DISAGREEING = [
    ("callId", "v3:another", "attributes.callId does not agree with the data (data.id)"),
    ("deliveryId", "another", "attributes.deliveryId does not agree"),
    ("event", "call.started", "attributes.event does not agree"),
    ("endedReason", "", "attributes.endedReason does not agree"),
    ("endedReason", "callerHangup", "attributes.endedReason does not agree"),
    ("recordingAvailable", "false", "attributes.recordingAvailable does not agree"),
    ("endedAt", "", "attributes.endedAt does not agree"),
    ("direction", "inbound", "attributes.direction does not agree"),
    ("source", "reconcile", "source is reconcile but deliveryId is not reconcile:<data.id>"),
]


@pytest.mark.parametrize(("name", "value", "reason"), DISAGREEING,
                         ids=[f"{n}={v!r}" for n, v, _ in DISAGREEING])  # fmt: skip
def test_attributes_that_disagree_with_the_data_are_rejected(name, value, reason):
    envelope = golden()
    attributes = message_attributes(envelope, "webhook") | {name: value}
    with pytest.raises(AssertionError) as raised:
        validate_message(encode(envelope), attributes)
    assert reason in str(raised.value)


def test_a_null_end_reason_must_be_the_empty_attribute():
    envelope = golden()
    envelope["data"]["endedReason"] = None
    attributes = message_attributes(envelope, "webhook")
    assert attributes["endedReason"] == ""
    validate_message(encode(envelope), attributes)
    with pytest.raises(AssertionError, match="endedReason does not agree"):
        validate_message(encode(envelope), attributes | {"endedReason": "null"})


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xef\xbb\xbf" + encode(GOLDEN), "byte order mark"),
    (b'{"deliveryId":"d\xff","data":{"id":"v3:x"}}', "not UTF-8"),
    (b'{"deliveryId":"d1","data":{"id":"v3:x"}', "not JSON"),
    (b'{"deliveryId":"d1","deliveryId":"d2","data":{"id":"v3:x"}}', "a key appears twice"),
    (b'{"deliveryId":"d1","data":{"id":"v3:x","durationSeconds":NaN}}', "NaN is not JSON"),
    (json.dumps(GOLDEN), "must be bytes"),
], ids=["bom", "not-utf8", "truncated", "duplicate-key", "nan", "str"])  # fmt: skip
def test_data_that_is_not_strict_utf8_json_is_rejected(data, reason):
    with pytest.raises(AssertionError, match=reason):
        validate_message(data, message_attributes(GOLDEN, "webhook"))


def test_problems_name_places_and_types_never_the_payloads_values():
    canary = "QZXschemacanary"
    envelope = golden()
    envelope["data"]["callerNumber"] = [canary]
    envelope["data"]["task"]["facts"] = canary
    envelope["data"]["transcript"] = {"text": canary}
    envelope["data"]["endedReason"] = {"reason": canary}
    attributes = message_attributes(golden(), "webhook") | {"extra": [canary]}
    with pytest.raises(AssertionError) as raised:
        validate_message(encode(envelope), attributes)  # type: ignore[arg-type]
    message = str(raised.value)
    assert canary not in message
    for place in ("$.data.callerNumber", "$.data.task", "$.data.transcript",
                  "$.data.endedReason", "attributes $.extra"):  # fmt: skip
        assert place in message


# --- the conftest hook: every message CallEventPublisher publishes is checked ----------------


class RecordingRpc:
    """Stands in for the generated client's Publish RPC (beneath ``PublisherClient.publish``)."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, str]]] = []

    def method(self) -> Any:
        def publish(client: Any, *, topic: str, messages: list[Any], **options: Any) -> Any:
            assert set(options) == {"retry", "timeout"}
            self.published += [(m.data, dict(m.attributes)) for m in messages]
            return SimpleNamespace(message_ids=[f"message-{len(self.published)}"])

        return publish


@pytest.fixture
def recording_client(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, RecordingRpc]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher import PublisherClient as GeneratedClient

    rpc = RecordingRpc()
    monkeypatch.setattr(GeneratedClient, "publish", rpc.method())
    client = pubsub_v1.PublisherClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": "127.0.0.1:9"}
    )
    return client, rpc


def test_the_hook_passes_valid_messages_to_pubsub_and_stops_invalid_ones(
    _published_messages_match_the_schema: list[str], recording_client
):
    client, rpc = recording_client
    publisher = CallEventPublisher(client, "projects/p/topics/t")
    body = encode(GOLDEN)
    assert publisher.publish(body, message_attributes(GOLDEN, "webhook")).message_id == "message-1"
    assert rpc.published == [(body, message_attributes(GOLDEN, "webhook"))]

    bad = message_attributes(GOLDEN, "webhook") | {"schemaVersion": "2"}
    with pytest.raises(AssertionError, match=r"\$.schemaVersion"):
        publisher.publish(body, bad)
    assert len(rpc.published) == 1  # not published
    assert len(_published_messages_match_the_schema) == 1  # and the test would fail at teardown
    _published_messages_match_the_schema.clear()  # (this one meant it)


# --- the stack's schema tap (tests/fixtures/stack.py) ------------------------------------------


def tapped(envelope: dict[str, Any], attributes: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(data=encode(envelope), attributes=attributes, message_id="m-1")


def test_the_stack_tap_accepts_valid_messages_and_fails_on_one_off_the_schema():
    envelope = golden()
    good = tapped(envelope, message_attributes(envelope, "webhook"))
    _check_schema_tap([good], {envelope["deliveryId"]})
    bad = tapped(envelope, message_attributes(envelope, "webhook") | {"source": "email"})
    with pytest.raises(AssertionError, match=r"1 message\(s\) on the stack's topic off the schema"):
        _check_schema_tap([good, bad], set())


def test_the_stack_tap_fails_when_a_delivered_webhook_never_reached_it():
    with pytest.raises(AssertionError, match="1 of 1 delivered webhook"):
        _check_schema_tap([], {"a-delivered-id"})  # zero messages while webhooks were accepted


@pytest.mark.parametrize("event", [None, "missing"])
def test_an_envelope_without_an_event_is_valid_as_ingest_accepts_it(event):
    """Ingest does not require ``event``: null or missing publishes an empty attribute."""
    envelope = golden()
    if event == "missing":
        del envelope["event"]
    else:
        envelope["event"] = None
    check_envelope(envelope)
    assert message_attributes(envelope, "webhook")["event"] == ""


def test_a_reconcile_envelope_keeps_a_lone_surrogate_from_the_api_as_its_escape():
    """The API's JSON may carry ``"\\ud83d"`` (a transcript cut mid-emoji); it has no UTF-8
    form. Reconcile must still publish the call (else it fails on every run and the checkpoint
    never passes it): the bytes are UTF-8 JSON that decodes to the same string."""
    from ttma_relay.contract.messages import reconcile_envelope

    call = json.loads('{"id":"v3:cut","transcript":"[Agent] hi \\ud83d","endedAt":null}')
    body = reconcile_envelope(call)
    assert b"\\ud83d" in body
    assert json.loads(body.decode("utf-8"))["data"] == call
