"""Fuzz the archivers' push decoder and their one log line per message.

Part of the security issue's fuzzing: no unhandled exception, no input echoed into a log line.
Hypothesis draws a valid push CloudEvent with one hostile change at one layer, or something
that is no push at all (``tests/support/push_fuzz.py``, where the verdicts are read from the
docs). ``decode_call_event`` must give that verdict (a call event, ``IgnoredEvent``, or
``PoisonMessage`` with the documented reason) and raise nothing else; ``run_subscriber`` (with
a fake archive) must log exactly one JSON line with the documented outcome and severity, and
no ``CANARY`` planted where nothing may be logged. Every line is also handed to the suite's
secret and personal-data scan (``tests/fixtures/pii_scan.py``).

Reproducible, and sized by ``TTMA_FUZZ_EXAMPLES`` (CI defaults below), with reports
``fuzz-push-decoder.json`` and ``fuzz-not-a-push.json``: tests/support/fuzz.py.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import given

from handlers.subscriber import NOT_A_PUSH, run_subscriber
from tests.fixtures import pii_scan
from tests.support.fuzz import examples, fuzz_settings, write_report
from tests.support.paths import REPO_ROOT
from tests.support.push_fuzz import (
    CANARY,
    DECODED,
    IGNORED,
    LOGGED_EVENT_CHARS,
    POISON,
    Push,
    not_pushes,
    pushes,
)
from ttma_relay import logs
from ttma_relay.contract.call_event import (
    CallEvent,
    IgnoredEvent,
    PoisonMessage,
    decode_call_event,
)

PUSHES = examples(600)  # CI; TTMA_FUZZ_EXAMPLES sets a long run
NOT_PUSHES = examples(300)
FUNCTION = "archive_transcript"
ARCHIVED = "archived"  # what the fake archive answers
# The line of each verdict: outcome and severity (docs/archive.md, the table of outcomes).
LINE_OF = {DECODED: (ARCHIVED, "INFO"), IGNORED: ("ignored", "INFO"), POISON: ("poison", "WARNING")}


def documented_reasons() -> set[str]:
    """The poison reasons docs/archive.md lists for a decoded CloudEvent (``not_a_push`` is the
    served app's, for a request that never became one: tests/integration/test_archive_fuzz.py)."""
    text = (REPO_ROOT / "docs" / "archive.md").read_text()
    paragraph = text[text.index("Poison reasons:") :].split(".\n", 1)[0]
    listed = set(re.findall(r"`([a-z0-9]+(?:_[a-z0-9]+)+)`", paragraph))  # `event` is none
    assert NOT_A_PUSH in listed
    return listed - {NOT_A_PUSH}


REASONS = documented_reasons()


def verdict_of(cloud_event: Any) -> tuple[str, str | None, CallEvent | None]:
    """What ``decode_call_event`` made of it; any exception but its two propagates."""
    try:
        event = decode_call_event(cloud_event)
    except IgnoredEvent as ignored:
        return IGNORED, ignored.reason, None
    except PoisonMessage as poison:
        return POISON, poison.reason, None
    return DECODED, None, event


def the_line(cloud_event: Any, seen: list[str]) -> tuple[str, dict[str, Any], list[CallEvent]]:
    """``run_subscriber``'s answer, its one log line (checked: one line, JSON, no canary) and
    the events it handed to the archive."""
    stream = io.StringIO()
    archived: list[CallEvent] = []

    def archive(event: CallEvent, context: dict[str, Any]) -> str:
        archived.append(event)
        return ARCHIVED

    logs.set_stream(stream)
    try:
        outcome = run_subscriber(FUNCTION, cloud_event, archive, is_forgotten=lambda _: False)
    finally:
        logs.set_stream(None)
    text = stream.getvalue()
    seen.append(text)
    lines = text.splitlines()
    assert len(lines) == 1, f"{len(lines)} log lines: {text[:300]!r}"
    assert CANARY not in text, f"logged what the message carried: {text[:600]}"
    return outcome, json.loads(lines[0]), archived


def scan_and_report(
    request: pytest.FixtureRequest,
    name: str,
    seen: list[str],
    histogram: Counter[str],
    started: float,
) -> None:
    pii_scan.scan_text(request.node.nodeid, "ttma_relay log lines", "".join(seen))
    print(
        write_report(name, cases=len(seen), seconds=time.monotonic() - started, histogram=histogram)
    )


def test_fuzz_the_decoder_gives_the_documented_verdict_and_logs_no_content(request):
    histogram: Counter[str] = Counter()
    seen: list[str] = []
    started = time.monotonic()

    @fuzz_settings(PUSHES)
    @given(pushes())
    def one(push: Push) -> None:
        expected = push.verdict
        where = f"{push.layer}: {push.change}"
        assert expected.outcome != POISON or expected.reason in REASONS, where  # the strategy
        outcome, reason, event = verdict_of(push.cloud_event())
        assert (outcome, reason) == (expected.outcome, expected.reason), where
        if event is not None:
            assert event.call_id == expected.call_id, where

        answer, line, archived = the_line(push.cloud_event(), seen)
        logged_outcome, severity = LINE_OF[expected.outcome]
        assert answer == logged_outcome, where
        assert (line["function"], line["outcome"], line["severity"]) == (
            FUNCTION,
            logged_outcome,
            severity,
        ), where
        assert line.get("reason") == expected.reason, where
        assert line.get("callId") == expected.call_id, where  # a valid one only
        if expected.outcome == DECODED:
            assert [e.call_id for e in archived] == [expected.call_id], where
            assert line.get("source") == expected.source, where
        else:
            assert archived == [], where
        if expected.outcome == IGNORED:
            assert line["event"] == expected.event[:LOGGED_EVENT_CHARS], where
        for name in ("deliveryId", "messageId"):  # logged by design: as strings, if at all
            assert isinstance(line.get(name, ""), str), where
        histogram[f"{where} -> {expected.outcome} {expected.reason or ''}".rstrip()] += 1
        histogram[f"verdict {expected.outcome} {expected.reason or ''}".rstrip()] += 1

    one()
    scan_and_report(request, "push-decoder", seen, histogram, started)
    reached = {key.split()[-1] for key in histogram if key.startswith("verdict poison")}
    assert reached == REASONS, f"poison reasons the run never reached: {REASONS - reached}"
    assert histogram[f"verdict {DECODED}"] and histogram[f"verdict {IGNORED} unhandled_event"]


def test_fuzz_anything_that_is_not_a_push_is_poison(request):
    histogram: Counter[str] = Counter()
    seen: list[str] = []
    started = time.monotonic()

    @fuzz_settings(NOT_PUSHES)
    @given(not_pushes())
    def one(drawn: tuple[str, Any]) -> None:
        kind, thing = drawn
        outcome, reason, _ = verdict_of(thing)
        assert outcome == POISON, f"{kind}: {outcome}"
        assert reason in REASONS, f"{kind}: {reason}"
        answer, line, archived = the_line(thing, seen)
        assert answer == "poison" and archived == [], kind
        assert (line["outcome"], line["severity"], line["reason"]) == ("poison", "WARNING", reason)
        histogram[f"{kind} -> {reason}"] += 1

    one()
    scan_and_report(request, "not-a-push", seen, histogram, started)
