"""Fuzz the whole Pub/Sub push request at ``archive_transcript``, served by functions-framework
(gunicorn, as deployed) against the storage and Firestore emulators.

Hypothesis draws a request (tests/support/archive_fuzz.py: method, path, content type, binary-
or structured-mode CloudEvent headers, framing, and a push body with one hostile change at one
layer, other JSON or bytes), writes it raw to a socket and checks the answer and the log
against an oracle written from the contract. Invariants on every request, with the emulators
healthy (a transcript archiver asks the vendor API only for a transcript a message lacks and
should have, which no case does):

- an answer within ``BOUND_SECONDS``, and no 5xx;
- the status and the function's one log line (outcome, and reason) the oracle predicts: 200
  ``OK`` for every POST (archived, already archived, not shipped, ignored, poison, not_a_push
  included: all acked); werkzeug's 405 for any other method (the route takes POST only, on
  every path), not logged;
- every log line one JSON object at INFO or WARNING (no traceback, no ERROR);
- nothing of the CANARY (in transcripts, ``task.facts``, unknown fields, attribute values,
  headers) in the answer's head or body, or in the log;
- a request drawn to be sent twice finds the first one's work done (``already_archived``, the
  index unchanged).

At the end every call the oracle expected archived has its objects in the bucket and its index
document, with the stored form of each field the case set (lone surrogates as escape text,
integers beyond 64 bits as decimal text, ``source`` only when it is a known one), and no index
document holds the CANARY.

Reproducible, and sized by ``TTMA_FUZZ_EXAMPLES`` (CI default below), with a report
``fuzz-archive.json`` under ``TTMA_FUZZ_REPORT_DIR``: tests/support/fuzz.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given

from devstack.functions import start_function
from devstack.stack.services import WARMED_LOG_TEXT
from tests.support.archive_fuzz import ABSENT, CANARY, NOW, Case, Ledger, cases
from tests.support.fuzz import LogTail, examples, fuzz_settings
from tests.support.fuzz import write_report as report_fuzz
from tests.support.payloads import PHONE_HASH_KEY
from tests.support.raw_http import RawResponse, exchange, request_bytes
from ttma_relay.contract.call_keys import call_key

pytestmark = pytest.mark.emulator
EXAMPLES = examples(600)  # CI: 11-13 s here (2 shared cores); TTMA_FUZZ_EXAMPLES for more
BOUND_SECONDS = 10.0  # an answer within this, or the case fails
FUNCTION = "archive_transcript"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # the vendor API: never called (a call would be a 503)
histogram: Counter[str] = Counter()


@dataclass
class Target:
    port: int
    log: LogTail
    bucket: Any
    index: Any
    cases: int = 0
    ledger: Ledger = field(default_factory=Ledger)


@pytest.fixture(scope="module")
def target(emulators, storage_client, firestore_client, tmp_path_factory):
    from ttma_relay.adapters.call_index import CallIndex

    suffix = uuid.uuid4().hex[:10]
    bucket = storage_client.create_bucket(f"fuzz-archive-{suffix}")
    collection = f"fuzz_calls_{suffix}"
    env = {
        **emulators,
        "ARCHIVE_BUCKET": bucket.name,
        "CALLS_COLLECTION": collection,
        "DELIVERIES_COLLECTION": f"fuzz_deliveries_{suffix}",
        "TTMA_API_KEY": "mbn_live_" + "f" * 40,
        "TTMA_PHONE_HASH_KEY": PHONE_HASH_KEY,
        "TTMA_API_BASE_URL": CLOSED_PORT_URL,
    }
    log_path = tmp_path_factory.mktemp("fuzz-archive") / f"{FUNCTION}.log"
    function = start_function(FUNCTION, env, log_path)
    try:
        log = LogTail(log_path)
        log.wait_for(WARMED_LOG_TEXT)  # its line then is not any case's
        served = Target(function.port, log, bucket, CallIndex(firestore_client, collection))
        log.new()
        yield served
    finally:
        function.stop()


def outcome_lines(log: str) -> list[dict[str, Any]]:
    records = []
    for line in log.splitlines():
        record = json.loads(line)  # a traceback or any other text line fails here
        assert record["severity"] in {"INFO", "WARNING"}, line
        if record.get("function") == FUNCTION:
            records.append(record)
    return records


def check(
    case: Case, response: RawResponse, seconds: float, log: str, expected: str | None
) -> dict[str, Any] | None:
    """One answer and the log lines it left, against the oracle (``expected``: the outcome)."""
    label = f"{response.status} {expected or '-'}"
    note = f"{label}: {case.note}"
    assert response.status is not None, f"no answer: {note}"
    assert seconds < BOUND_SECONDS, f"{seconds:.1f} s: {note}"
    assert response.status < 500, f"{note}\n{response.raw[:600]!r}\n{log[-2000:]}"
    assert response.status == case.expect.status, f"{note}\n{response.raw[:600]!r}"
    head_and_body = response.raw.split(b"\r\n\r\n", 1)[0] + response.body
    assert CANARY.encode() not in head_and_body, f"echoed: {note}"
    assert CANARY not in log, f"logged request content: {note}\n{log}"
    records = outcome_lines(log)
    if expected is None:
        assert records == [], f"{note}\n{log}"
        histogram[label] += 1
        return None
    assert response.body == b"OK", f"{note}\n{response.raw[:600]!r}"
    assert len(records) == 1, f"{note}\n{log}"
    [record] = records
    reason = record.get("reason")
    assert (record["outcome"], reason if case.expect.reason else None) == (
        expected,
        case.expect.reason,
    ), f"{note}\n{log}"
    histogram[f"{label} {reason}" if reason else label] += 1
    return record


def send(served: Target, case: Case) -> tuple[RawResponse, float, str]:
    data = request_bytes(
        b"", case.headers, method=case.method, path=case.path, framing=case.framing
    )
    started = time.monotonic()
    response = exchange(served.port, data, timeout=BOUND_SECONDS + 5)
    seconds = time.monotonic() - started
    return response, seconds, served.log.new()  # its log line is written before its answer


def run_case(served: Target, case: Case) -> None:
    served.cases += 1
    for attempt in range(2 if case.twice else 1):
        expect = case.expect
        expected = expect.outcome
        if expect.call is not None:
            expected = served.ledger.outcome(expect.call)
        response, seconds, log = send(served, case)
        record = check(case, response, seconds, log, expected)
        if attempt == 1 and expected in ("already_archived", "not_shipped"):
            assert record is not None and record.get("indexChanged") is False, (
                f"a redelivery changed the index: {case.note}\n{log}"
            )
            histogram["sent twice, the index unchanged"] += 1


def check_archive(served: Target) -> int:
    """Every call the oracle sent to the archive: its objects and its index document."""
    names = {blob.name for blob in served.bucket.list_blobs()}
    checked = 0
    for (call_id, day), part in served.ledger.parts.items():
        key = call_key(call_id)
        wanted = ["call.json"] + (
            ["transcript.txt", "transcript.json"] if part == "transcript" else []
        )
        if day == NOW:
            prefixes = {name.rsplit("/", 2)[0] for name in names if f"/{key}/" in name}
        else:
            prefixes = {f"calls/{day}/{key}"}
        assert any(all(f"{prefix}/{name}" in names for name in wanted) for prefix in prefixes), (
            f"{call_id!r} {day}: {sorted(n for n in names if key in n)}"
        )
        checked += 1
    statuses: dict[str, str] = {}
    for (call_id, _), part in served.ledger.parts.items():
        if statuses.get(call_id) != "archived":
            statuses[call_id] = "archived" if part == "transcript" else "not_shipped"
    for call_id, status in statuses.items():
        document = served.index.get(call_key(call_id))
        assert document is not None, f"no index document for {call_id!r}"
        assert document["transcriptStatus"] == status, (call_id, document)
        call = served.ledger.calls[call_id]
        assert document["callId"] == call.indexed.get("callId", document["callId"]), document
        if call.unique:  # no other case wrote this document: it holds what this one sent
            for name, value in call.indexed.items():
                held = field_of(document, name)
                assert held == value and type(held) is type(value), (name, value, document)
        assert CANARY not in repr(document), document
    return checked


def field_of(document: dict[str, Any], name: str) -> Any:
    """The value at ``name`` (``usage.turnCount``), or ABSENT."""
    held: Any = document
    for part in name.split("."):
        held = held.get(part, ABSENT) if isinstance(held, dict) else ABSENT
    return held


def write_report(served: Target, started: float, **extra: Any) -> str:
    seconds = time.monotonic() - started
    return report_fuzz("archive", cases=served.cases, seconds=seconds, histogram=histogram, **extra)


def test_fuzz_no_push_gets_a_5xx_an_echo_a_traceback_or_a_log_of_its_content(target):
    histogram.clear()
    started = time.monotonic()

    @fuzz_settings(EXAMPLES)
    @given(cases())
    def one(case: Case) -> None:
        run_case(target, case)
        if target.cases % 1000 == 0:
            write_report(target, started)  # a long run can be followed (and stopped)

    one()
    archived = check_archive(target)
    print(write_report(target, started, archived=archived))
    assert archived > 0 and histogram["200 poison not_a_push"] > 0
    assert histogram["405 -"] > 0 and histogram["200 ignored unhandled_event"] > 0
