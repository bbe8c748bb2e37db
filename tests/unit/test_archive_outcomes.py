"""The archivers' verdict on a message before any archiving: ignored, poison or a call event.

No emulator: a message that is not a ``call.ended`` event is decided before the archive, the
index or the vendor API is touched (``deps`` is ``None`` here, so touching them fails).
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from handlers import archive_recording, archive_transcript
from handlers.ingest import STATUS_BY_ERROR
from handlers.subscriber import ARCHIVE_OUTCOMES, NOT_A_PUSH, run_subscriber
from tests.support.archive import cloud_event, encode, push_body, push_for
from tests.support.paths import REPO_ROOT
from tests.support.payloads import delivery
from ttma_relay.adapters import call_index
from ttma_relay.contract import messages
from ttma_relay.contract.call_event import (
    PUBSUB_EVENT_TYPE,
    IgnoredEvent,
    PoisonMessage,
    decode_call_event,
)
from ttma_relay.contract.messages import message_attributes

HANDLERS = {"archive_transcript": archive_transcript, "archive_recording": archive_recording}


def without_event(envelope: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in envelope.items() if k != "event"}


# A valid envelope of another event type: forward compatibility, acked without a warning.
IGNORED = {
    "call.started": (push_for({**delivery(), "event": "call.started"}), "call.started"),
    "call.summarized, no call": (push_for({**delivery(), "event": "x", "data": None}), "x"),
    "future event, any data": (
        push_body(encode({**delivery(), "event": "call.transferred.v2", "data": [1]})),
        "call.transferred.v2",
    ),
    "no event (ingest accepts it)": (push_body(encode(without_event(delivery()))), ""),
    "null event, empty attribute": (push_for({**delivery(), "event": None}), ""),
}

# Real poison: undecodable, or off the message contract.
POISON = {
    "not base64": (
        push_body(b"") | {"message": {"data": "%%%not base64", "messageId": "1"}},
        "bad_base64",
    ),
    "not JSON": (push_body(b"\xff\xfe not json"), "bad_json"),
    "UTF-16 JSON": (push_body(json.dumps(delivery()).encode("utf-16")), "bad_json"),
    "UTF-32 JSON, no BOM": (push_body(json.dumps(delivery()).encode("utf-32-le")), "bad_json"),
    "UTF-8 JSON after a BOM": (push_body(b"\xef\xbb\xbf" + encode(delivery())), "bad_json"),
    "not an object": (push_body(b"[1, 2, 3]"), "not_an_object"),
    "event not a string": (push_body(encode({**delivery(), "event": 7})), "bad_event"),
    "no call": (push_body(encode({**delivery(), "data": None})), "no_call"),
    "no call id": (push_body(encode({**delivery(), "data": {"direction": "in"}})), "no_call_id"),
}


@pytest.mark.parametrize("function", sorted(HANDLERS))
@pytest.mark.parametrize("name", sorted(IGNORED))
def test_another_event_type_is_ignored_at_info_and_acked(function, name, log_lines):
    body, event = IGNORED[name]
    assert HANDLERS[function].handle(cloud_event(body), None) == "ignored"  # returned: acked
    [line] = log_lines()
    assert (line["function"], line["severity"], line["outcome"]) == (function, "INFO", "ignored")
    assert (line["reason"], line["event"]) == ("unhandled_event", event)
    assert line["messageId"] == body["message"]["messageId"]
    if name != "future event, any data":
        assert line["deliveryId"]


@pytest.mark.parametrize("function", sorted(HANDLERS))
@pytest.mark.parametrize("name", sorted(POISON))
def test_real_poison_is_still_poison_at_warning(function, name, log_lines):
    body, reason = POISON[name]
    assert HANDLERS[function].handle(cloud_event(body), None) == "poison"
    [line] = log_lines()
    assert (line["function"], line["severity"], line["outcome"]) == (function, "WARNING", "poison")
    assert line["reason"] == reason


def test_a_cloud_event_that_is_not_a_pubsub_message_is_poison(log_lines):
    body = push_for(delivery())
    assert archive_transcript.handle(cloud_event(body, event_type="x.y"), None) == "poison"
    assert log_lines()[0]["reason"] == "not_pubsub"


def test_the_type_of_a_cloud_event_that_is_not_a_pubsub_message_is_not_logged(log_lines):
    event_type = "QZXtypecanary: +16475551234"  # whoever sends the CloudEvent chooses it
    body = push_for(delivery())
    assert archive_transcript.handle(cloud_event(body, event_type=event_type), None) == "poison"
    [line] = log_lines()
    assert (line["reason"], line["detail"]) == (
        "not_pubsub",
        "the CloudEvent is not a Pub/Sub message",
    )
    assert "QZXtypecanary" not in json.dumps(line)


class Unreadable:
    """No CloudEvent: reading its type raises ``error``, or (``type_ok``) its data does."""

    def __init__(self, error: type[Exception], *, type_ok: bool = False) -> None:
        self.error, self.type_ok = error, type_ok

    def __getitem__(self, name: str) -> str:
        if self.type_ok:
            return PUBSUB_EVENT_TYPE
        raise self.error("QZXreadcanary")

    @property
    def data(self) -> Any:
        raise self.error("QZXreadcanary")


@pytest.mark.parametrize("error", [ValueError, IndexError, RuntimeError, AttributeError])
@pytest.mark.parametrize(("type_ok", "reason"), [(False, "not_pubsub"), (True, "no_message")])
def test_an_object_that_raises_when_read_is_poison_not_a_crash(error, type_ok, reason, log_lines):
    unreadable = Unreadable(error, type_ok=type_ok)
    with pytest.raises(PoisonMessage) as raised:
        decode_call_event(unreadable)
    assert raised.value.reason == reason
    assert archive_transcript.handle(unreadable, None) == "poison"
    [line] = log_lines()
    assert (line["severity"], line["reason"]) == ("WARNING", reason)
    assert "QZXreadcanary" not in json.dumps(line)


class Incomparable:
    """A CloudEvent type that raises when compared."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("QZXreadcanary")

    __ne__ = __eq__
    __hash__ = object.__hash__


def test_a_type_that_cannot_be_compared_is_not_pubsub():
    event = CloudEvent({"type": Incomparable(), "source": "s"}, push_for(delivery()))
    with pytest.raises(PoisonMessage) as raised:
        decode_call_event(event)
    assert raised.value.reason == "not_pubsub"


def test_ignored_is_not_a_kind_of_poison():
    with pytest.raises(IgnoredEvent) as raised:
        decode_call_event(cloud_event(IGNORED["call.started"][0]))
    assert not isinstance(raised.value, PoisonMessage)
    assert raised.value.event == "call.started"


def test_a_call_ended_event_reaches_the_archive_with_its_outcome(log_lines):
    envelope = delivery()
    seen: list[str] = []

    def archive(event, context) -> str:
        seen.append(event.call_id)
        return "archived"

    outcome = run_subscriber(
        "archive_transcript", cloud_event(push_for(envelope)), archive, is_forgotten=lambda _: False
    )
    assert outcome == "archived"
    assert seen == [envelope["data"]["id"]]
    [line] = log_lines()
    assert (line["severity"], line["outcome"], line["callId"]) == (
        "INFO",
        "archived",
        envelope["data"]["id"],
    )


def archived_line(attributes: dict[str, str], log_lines) -> dict[str, Any]:
    """The log line of a ``call.ended`` message with ``attributes``, archived."""
    envelope = delivery()
    body = push_body(encode(envelope), attributes)
    run_subscriber(
        "archive_transcript", cloud_event(body), lambda *_: "archived", is_forgotten=lambda _: False
    )
    [line] = log_lines()
    return line


@pytest.mark.parametrize("source", ["webhook", "reconcile", "replay"])
def test_a_known_source_is_logged_as_it_is(source, log_lines):
    attributes = message_attributes(delivery(), source)  # type: ignore[arg-type]
    assert archived_line(attributes, log_lines)["source"] == source


@pytest.mark.parametrize(
    "source", ["QZXsourcecanary", "Webhook", "webhook ", "replay\n", "+16475551234", "x" * 1024]
)
def test_any_other_source_is_logged_as_other_never_as_written(source, log_lines):
    line = archived_line({**message_attributes(delivery(), "webhook"), "source": source}, log_lines)
    assert line["source"] == "other"
    assert source.strip() not in json.dumps(line).replace('"other"', "")


@pytest.mark.parametrize("attributes", [{}, {"source": ""}, {"source": 7}])
def test_a_message_without_a_source_logs_none(attributes, log_lines):
    assert "source" not in archived_line(attributes, log_lines)


def test_the_known_sources_are_the_three_the_publishers_write():
    assert messages.KNOWN_SOURCES == {"webhook", "reconcile", "replay"}
    assert frozenset(typing.get_args(messages.Source)) == messages.KNOWN_SOURCES
    assert call_index.KNOWN_SOURCES is messages.KNOWN_SOURCES  # one definition, not two


def test_every_outcome_logged_here_is_in_the_contract(log_lines):
    for body, _ in (*IGNORED.values(), *POISON.values()):
        archive_transcript.handle(cloud_event(body), None)
    assert {line["outcome"] for line in log_lines()} <= ARCHIVE_OUTCOMES


# --- the outcome strings are a contract: code, docs and terraform/ agree ----------------------

ROOT = REPO_ROOT
RECONCILE_OUTCOMES = {"ok", "incomplete"}
WARM_UP_OUTCOMES = {"warmed", "warm_up_failed"}
REASON = re.compile(r"`([a-z0-9]+(?:_[a-z0-9]+)+)`")


def ticked(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def contract_bullet() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("- **Log `outcome` values are a contract**")
    return text[start : text.index("\n- **", start + 1)]


def test_the_architecture_doc_lists_every_outcome_the_code_logs():
    bullet = contract_bullet()
    ingest, rest = bullet.split("The archivers log", 1)
    archivers, reconcile = rest.split("Reconcile logs", 1)
    ingest_codes = {error.code for error in STATUS_BY_ERROR} | {"accepted", "duplicate"}
    assert ticked(ingest) - {"outcome", "status"} == ingest_codes | {"self_test"}
    assert ticked(archivers.split("(docs/archive.md", 1)[0]) == ARCHIVE_OUTCOMES
    assert ticked(reconcile.split(".", 1)[0]) == RECONCILE_OUTCOMES
    source = (ROOT / "handlers" / "reconcile.py").read_text()
    assert all(f'"{outcome}"' in source for outcome in RECONCILE_OUTCOMES)
    start_up = reconcile.split(".", 1)[1].split("(see", 1)[0]
    wiring = (ROOT / "handlers" / "wiring.py").read_text()
    assert ticked(start_up) == set(re.findall(r'outcome="(\w+)"', wiring)) == WARM_UP_OUTCOMES


def test_the_archive_doc_lists_the_outcomes_and_the_poison_reasons_the_code_has():
    text = (ROOT / "docs" / "archive.md").read_text()
    section = text[text.index("## Acks, retries and poison messages") :]
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+)", section, re.MULTILINE)
    assert set().union(*(ticked(row) for row in rows)) == ARCHIVE_OUTCOMES
    reasons = section[section.index("Poison reasons:") :].split(".\n", 1)[0]
    source = (ROOT / "ttma_relay" / "contract" / "call_event.py").read_text()
    raised = set(re.findall(r'PoisonMessage\(\s*"(\w+)"', source))
    assert set(REASON.findall(reasons)) == raised | {NOT_A_PUSH}  # the app's own (subscriber)
    assert IgnoredEvent.reason not in raised  # an unhandled event type is not poison


def test_terraform_filters_only_on_documented_outcomes():
    documented = ticked(contract_bullet())
    used: set[str] = set()
    for path in (ROOT / "terraform").rglob("*.tf"):
        used |= set(re.findall(r'jsonPayload\.outcome\s*=\s*\\?"(\w+)\\?"', path.read_text()))
    assert used, "terraform/ filters on no outcome: the pattern is stale"
    assert used <= documented, sorted(used - documented)
    assert "poison" not in used and "ignored" not in used  # nothing alerts on either (yet)
