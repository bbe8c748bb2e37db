"""Fuzz the whole request at ingest's HTTP edge, served by functions-framework (gunicorn).

Hypothesis draws a request — method, path, headers, signature header, content type, framing
(length, chunked, bad chunked, truncated, over the limit) and a body (the vendor's payload, the
same with one hostile change, correctly signed or not, or bytes) — writes it raw to a socket and
checks the answer against an oracle that knows the status policy. Invariants on every request,
with the emulators healthy: no 5xx, the status the policy gives, JSON from ingest, nothing from
the request (a canary in bodies and headers) in the answer or the log, no log line other than
ingest's own INFO / WARNING JSON. At the end every ``accepted`` is exactly one message.

Reproducible, and sized by ``TTMA_FUZZ_EXAMPLES`` (CI default below; ``make fuzz`` runs
100,000), with a report ``fuzz-ingest.json`` under ``TTMA_FUZZ_REPORT_DIR``: tests/support/fuzz.py.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from devstack.functions import start_function
from tests.support.fuzz import LogTail, examples, fuzz_settings
from tests.support.fuzz import write_report as report_fuzz
from tests.support.payloads import SECRET, delivery
from tests.support.pubsub import pull_all
from tests.support.raw_http import BAD_CHUNKINGS, RawResponse, exchange, request_bytes

pytestmark = pytest.mark.emulator
EXAMPLES = examples(500)  # CI; make fuzz: 100000
MAX_BODY = 16 * 1024
CANARY = "QZXfuzzcanary"  # in bodies and headers; never in an answer or the log
MAX_DEPTH = 64  # handlers.ingest.MAX_JSON_DEPTH, restated: the oracle is independent
DEPTHS = (1, 2, 10, 59, 60, 61, 62, 63, 64, 200, 3000, 5000)  # of a value, where it sits
# Rejected by gunicorn before ingest runs (its own plain-text page): any status below 500,
# except 501 for a transfer coding it does not implement (RFC 9112 section 6.1).
SERVER_LEVEL_HEADERS = (
    (("Bad Header", "x"),),
    (("X-Nul", "a\x00b"),),
    (("X-Fold", "a"), (" folded", "b")),
    (("Content-Length", "1"), ("Content-Length", "2")),
    (("Content-Length", "abc"),),
    (("Content-Length", "-1"),),
    (("Content-Length", "5"), ("Transfer-Encoding", "chunked")),
    (("Transfer-Encoding", "chunked, chunked"),),
    (("Transfer-Encoding", "gzip"),),
    (("Transfer-Encoding", "x-custom"),),
    (("X-Long", "y" * 9000),),
)
histogram: Counter[str] = Counter()


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    headers: list[tuple[str, str]]
    framing: bytes
    expect: frozenset[int] | None  # None: ingest does not run (gunicorn or routing answers)
    note: str


@functools.cache
def pick(*options: Any) -> st.SearchStrategy[Any]:
    """``sampled_from(options)``, built once: rebuilding strategies per draw dominated the run."""
    return st.sampled_from(options)


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (``integers(...) == 0`` would favour the boundary)."""
    return pick(*[False] * (n - 1), True)


# --- bodies: (bytes, passes ingest's JSON and contract checks, envelope for headers) ---------

safe_text = st.text(st.characters(codec="utf-8"), max_size=12)
any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | safe_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(safe_text, inner, max_size=3),
    max_leaves=6,
)
header_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
delivery_ids = st.uuids().map(str) | st.text(st.characters(codec="utf-8"), min_size=1, max_size=24)


pass_through_fields = st.sets(
    pick(
        "direction",
        "status",
        "endedReason",
        "endedAt",
        "recordingAvailable",
        "hasTranscript",
        "durationSeconds",
        "task",
        "transcript",
    ),
    max_size=3,
)


def id_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value.encode()) <= 1024


@st.composite
def valid_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    envelope = delivery(transcript=f"[Agent] {CANARY} [Caller] yes")
    envelope["deliveryId"] = draw(delivery_ids)
    envelope["data"]["id"] = "v3:" + draw(st.uuids()).hex
    for name in draw(pass_through_fields):
        envelope["data"][name] = draw(any_json)  # passed through, whatever its type
    if draw(st.booleans()):
        envelope["data"][f"extra{CANARY}"] = draw(any_json)
    if draw(one_in(10)):
        del envelope["event"]
    return envelope


def dumps(envelope: Any, ascii_only: bool) -> bytes:
    return json.dumps(envelope, ensure_ascii=ascii_only, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def splice(envelope: dict[str, Any], where: str, raw: str, ascii_only: bool) -> bytes:
    """The envelope's JSON with ``raw`` as the value of a new member at ``where``."""
    container = envelope if where == "top" else envelope["data"]
    if where == "facts":
        task = envelope["data"]["task"]
        if not isinstance(task, dict) or not isinstance(task.get("facts"), dict):
            envelope["data"]["task"] = task = {"facts": {"debtor_name": CANARY}}
        container = task["facts"]
    container["@@RAW@@"] = 0
    return dumps(envelope, ascii_only).replace(b'"@@RAW@@":0', raw.encode(), 1)


RAW_DEPTH = {"top": 1, "data": 2, "facts": 4}  # depth of the object the spliced value sits in


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[bytes, bool, dict[str, Any] | None]:
    """One change to a valid payload, and whether ingest must still accept it."""
    envelope = draw(valid_envelopes())
    ascii_only = draw(st.booleans())
    ok = id_ok(envelope["deliveryId"])
    kind = draw(
        pick(
            *[
                "surrogate",
                "digits",
                "depth",
                "duplicate",
                "constant",
                "bom",
                "utf16",
                "truncated",
                "trailing",
                "not_object",
                "required",
                "id_length",
                "invalid_utf8",
            ]
        )
    )
    where = draw(pick(*RAW_DEPTH))
    if kind == "surrogate":  # an escape when ascii_only, else raw surrogate bytes (not UTF-8)
        lone = draw(pick("\ud800", "\udbff", "\udc00", "\udfff"))
        target = draw(pick("deliveryId", "event", "data.id", "transcript", "key"))
        if target == "key":
            envelope["data"][f"k{lone}"] = 1
        elif target == "data.id":
            envelope["data"]["id"] += lone
        elif target == "transcript":
            envelope["data"]["transcript"] = f"{CANARY} {lone}"
        else:
            envelope[target] = f"abc{lone}"
        return dumps(envelope, ascii_only), False, None
    if kind == "digits":
        digits = draw(pick(1, 20, 4300, 4301, 5000, 9000))
        sign = draw(pick("", "-"))
        raw = f'"n":{sign}{"9" * digits}'
        if draw(st.booleans()):
            raw = f'"n":[1,{sign}{"7" * digits}]'
        return splice(envelope, where, raw, ascii_only), ok and digits <= 4300, envelope
    if kind == "depth":
        depth = draw(pick(*DEPTHS))
        nest = (
            ("[" * depth + "]" * depth)
            if draw(st.booleans())
            else ('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1))
        )
        total = RAW_DEPTH[where] + depth
        return (
            splice(envelope, where, f'"deep":{nest}', ascii_only),
            (ok and total <= MAX_DEPTH),
            envelope,
        )
    if kind == "duplicate":
        name = "deliveryId" if where == "top" else "status"
        if where == "facts":
            envelope["data"]["task"] = {"facts": {"status": 1}}
        return splice(envelope, where, f'"{name}":"dup"', ascii_only), False, None
    if kind == "constant":
        constant = draw(pick("NaN", "Infinity", "-Infinity"))
        return splice(envelope, where, f'"c":{constant}', ascii_only), False, None
    body = dumps(envelope, ascii_only)
    if kind == "bom":
        return b"\xef\xbb\xbf" + body, False, None
    if kind == "utf16":
        codec = draw(pick("utf-16", "utf-16-le", "utf-16-be", "utf-32"))
        return json.dumps(envelope).encode(codec), False, None
    if kind == "truncated":
        return body[: draw(st.integers(0, len(body) - 1))], False, None
    if kind == "trailing":
        tail = draw(pick(b" ", b"\n\t ", b"x", b",", b"{}", b"\x00"))
        return body + tail, ok and not tail.strip(b" \n\t"), envelope
    if kind == "not_object":
        return draw(pick(*[b"[]", b'"s"', b"1", b"null", b"true", b"[{}]"])), False, None
    if kind == "required":
        field, value = draw(
            pick(
                *[
                    ("deliveryId", 7),
                    ("deliveryId", None),
                    ("deliveryId", ""),
                    ("deliveryId", " \t"),
                    ("deliveryId", ("x",)),
                    ("event", 5),
                    ("event", ("a",)),
                    ("data", ()),
                    ("data", "x"),
                    ("data", None),
                    ("data.id", None),
                    ("data.id", ""),
                    ("data.id", 3),
                ]
            )
        )
        if field == "data.id":
            envelope["data"]["id"] = value
        else:
            envelope[field] = value
        return dumps(envelope, ascii_only), False, None
    if kind == "id_length":
        unit, size = draw(pick(("x", 1024), ("x", 1025), ("é", 512), ("é", 513)))
        target = draw(pick("deliveryId", "data.id"))
        if target == "deliveryId":
            envelope["deliveryId"] = unit * size
        else:
            envelope["data"]["id"] = unit * size
        ok = id_ok(envelope["deliveryId"]) and id_ok(envelope["data"]["id"])
        return dumps(envelope, ascii_only), ok, envelope
    # invalid_utf8
    bad = draw(pick(b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"))
    member = b'"data":{"bad":"%s%s",' % (CANARY.encode(), bad)
    return body.replace(b'"data":{', member, 1), False, None


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool, dict[str, Any] | None]:
    kind = draw(pick(*["valid"] * 4 + ["hostile"] * 4 + ["bytes"]))
    if kind == "valid":
        envelope = draw(valid_envelopes())
        return dumps(envelope, draw(st.booleans())), id_ok(envelope["deliveryId"]), envelope
    if kind == "hostile":
        return draw(hostile_bodies())
    junk = draw(st.binary(max_size=200))
    return junk[: len(junk) // 2] + CANARY.encode() + junk[len(junk) // 2 :], False, None


# --- the signature header: (value or None, verifies) ------------------------------------------


@st.composite
def signature_headers(draw: st.DrawFn, body: bytes) -> tuple[str | None, bool]:
    now = int(time.time())
    digest = verify.compute_signature(SECRET, body, now)
    wrong = verify.compute_signature("w" * 40, body, now)

    def signed_at(timestamp: int) -> str:
        return verify.compute_signature(SECRET, body, timestamp)

    kind = draw(
        pick(
            *[
                *["valid"] * 8,
                "upper",
                "among_many",
                "wrong_secret",
                "stale",
                "future",
                "tampered",
                "missing",
                "empty",
                "garbage",
                "duplicate_t",
                "spaces",
            ]
        )
    )
    return {
        "valid": (f"t={now},v1={digest}", True),
        "upper": (f"t={now},v1={digest.upper()}", True),
        "among_many": (f"v0=x,t={now},v1={wrong},v1={digest}", True),
        "wrong_secret": (f"t={now},v1={wrong}", False),
        # an hour out: a case may wait for the server, so 301 s would become valid (flaky)
        "stale": (f"t={now - 3600},v1={signed_at(now - 3600)}", False),
        "future": (f"t={now + 3600},v1={signed_at(now + 3600)}", False),
        "tampered": (f"t={now},v1={verify.compute_signature(SECRET, body + b' ', now)}", False),
        "missing": (None, False),
        "empty": ("", False),
        "garbage": (draw(header_text) + CANARY, False),
        "duplicate_t": (f"t={now},t={now},v1={digest}", False),
        "spaces": (f"t={now}, v1={digest}", False),
    }[kind]


# --- the whole request ------------------------------------------------------------------------


def header_safe(value: Any) -> bool:
    return isinstance(value, str) and value.isascii() and value.isprintable() and " " not in value


@st.composite
def cases(draw: st.DrawFn) -> Case:
    method = draw(pick(*["POST"] * 25 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = draw(pick(*["/"] * 20 + ["/anything", "/?q=1", "//x", "/robots.txt"]))
    framing_kind = draw(
        pick(
            *["length"] * 6
            + ["chunked"] * 3
            + ["bad_chunked"] * 2
            + ["short", "none", "declared_over"]
        )
    )
    body, body_ok, envelope = draw(bodies())
    if framing_kind == "none":
        body, body_ok, envelope = b"", False, None
    elif draw(one_in(12)):  # over the limit (trailing spaces: still valid JSON)
        body = body + b" " * (max(0, MAX_BODY + 1 - len(body)) + draw(st.integers(0, 1000)))
    oversize = len(body) > MAX_BODY
    signature, signature_ok = draw(signature_headers(body))

    headers: list[tuple[str, str]] = []
    content_type = draw(
        pick(
            *[
                "application/json",
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/json; charset=utf-16",
                None,
            ]
        )
    )
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if signature is not None:
        headers.append(("X-TTMA-Signature", signature))
    mismatch = False
    for header, key in (("X-TTMA-Event", "event"), ("X-TTMA-Delivery-Id", "deliveryId")):
        choice = draw(pick(*["same"] * 4 + ["absent", "other"]))
        if choice == "other":
            headers.append((header, f"other-{CANARY}"))
            mismatch = True
        elif choice == "same" and envelope is not None and header_safe(envelope.get(key)):
            headers.append((header, envelope[key]))
    if draw(st.booleans()):
        headers.append(
            (
                "X-Cloud-Trace-Context",
                draw(pick(*["105445aa7843bc8bf206b12000100000/1;o=1", "", "zz/zz", "/", "a" * 70])),
            )
        )
    if draw(one_in(5)):
        headers.append(("Expect", "100-continue"))
    headers.append((f"X-Extra-{draw(st.integers(0, 9))}", CANARY))

    bad_chunking = draw(pick(*sorted(BAD_CHUNKINGS)))
    if framing_kind in ("chunked", "bad_chunked"):
        headers.append(("Transfer-Encoding", "chunked"))
    if framing_kind == "chunked":
        cut = draw(st.integers(0, len(body)))
        extension = draw(pick(b"", b";a=b", b';name="v"'))
        pieces = [piece for piece in (body[:cut], body[cut:]) if piece]
        framing = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces)
        framing += b"0\r\n\r\n"
    elif framing_kind == "bad_chunked":
        framing = BAD_CHUNKINGS[bad_chunking](body)
    else:
        framing = body if framing_kind != "none" else b""
        declared = {
            "length": len(body),
            "short": len(body) + draw(st.integers(1, 100)),
            "declared_over": MAX_BODY + 1,
            "none": None,
        }
        if declared[framing_kind] is not None:
            headers.append(("Content-Length", str(declared[framing_kind])))
    headers.append(("Connection", draw(pick("close", "close", "keep-alive"))))
    server_level = draw(one_in(15))
    if server_level:
        odd = list(draw(pick(*SERVER_LEVEL_HEADERS)))
        if any(name == "Content-Length" for name, _ in odd):
            headers = [(n, v) for n, v in headers if n != "Content-Length"]
        headers = headers[:1] + odd + headers[1:]
    draw(st.randoms(use_true_random=False)).shuffle(headers)

    if server_level or path == "/robots.txt":
        expect = None
    elif method != "POST":
        expect = frozenset({405})
    elif framing_kind == "bad_chunked" and oversize:
        expect = frozenset({400, 413})  # whichever the read meets first
    elif framing_kind == "declared_over" or oversize:
        expect = frozenset({413})
    elif framing_kind in ("bad_chunked", "short"):
        expect = frozenset({400})
    elif not signature_ok:
        expect = frozenset({401})
    elif not body_ok or mismatch:
        expect = frozenset({400})
    else:
        expect = frozenset({200})
    note = (
        f"{method} {path} framing={framing_kind}/{bad_chunking} signed={signature_ok} "
        f"body_ok={body_ok} mismatch={mismatch} server_level={server_level} size={len(body)}"
    )
    return Case(method, path, headers, framing, expect, note)


# --- running a case against the served app -----------------------------------------------------


@dataclass
class Target:
    port: int
    log: LogTail


@pytest.fixture(scope="module")
def target(emulators, publisher_client, subscriber_client, tmp_path_factory):
    project, suffix = emulators["GOOGLE_CLOUD_PROJECT"], uuid.uuid4().hex[:10]
    topic = publisher_client.topic_path(project, f"fuzz-{suffix}")
    publisher_client.create_topic(name=topic)
    subscription = subscriber_client.subscription_path(project, f"fuzz-pull-{suffix}")
    subscriber_client.create_subscription(name=subscription, topic=topic)
    env = {
        **emulators,
        "TTMA_WEBHOOK_SECRET": SECRET,
        "CALL_EVENTS_TOPIC": f"fuzz-{suffix}",
        "DELIVERIES_COLLECTION": f"deliveries_fuzz_{suffix}",
        "MAX_BODY_BYTES": str(MAX_BODY),
    }
    log_path = tmp_path_factory.mktemp("fuzz") / "ingest.log"
    function = start_function("ingest", env, log_path, threads=4)
    try:
        yield Target(function.port, LogTail(log_path)), subscription
    finally:
        function.stop()


def classify(response: RawResponse) -> str:
    if response.status is None:
        return "no answer"
    if response.is_json and response.body:
        return f"{response.status} {response.json().get('status')}"
    return f"{response.status} {'(no body)' if not response.body else 'server'}"


def check(case: Case, response: RawResponse, log: str) -> None:
    label = classify(response)
    histogram[label] += 1
    assert response.status is not None, f"no answer: {case.note}"
    assert response.status < 500 or (
        case.expect is None
        and response.status == 501
        and any(n == "Transfer-Encoding" for n, _ in case.headers)
    ), f"{label}: {case.note}\n{response.raw[:400]!r}"
    assert "x-google-status" not in response.headers, case.note
    if case.expect is not None:
        assert response.status in case.expect, f"{label}, expected {set(case.expect)}: {case.note}"
        assert response.is_json, case.note
        answer = response.json()
        assert (
            answer["status"]
            in {
                200: {"accepted", "duplicate"},
                400: {"malformed_delivery", "header_body_mismatch"},
                401: {"invalid_signature"},
                405: {"method_not_allowed"},
                413: {"body_too_large"},
            }[response.status]
        ), f"{label}: {case.note}"
    histogram["accepted (total)"] += label == "200 accepted"  # gunicorn-level cases too
    head_and_body = response.raw.split(b"\r\n\r\n", 1)[0] + response.body
    assert CANARY.encode() not in head_and_body, f"echoed: {case.note}"
    for line in log.splitlines():
        record = json.loads(line)  # a traceback or any other text line fails here
        assert record["severity"] in {"INFO", "WARNING"}, f"{line}\n{case.note}"
    assert CANARY not in log, f"logged request content: {case.note}"


def cases_run() -> int:
    return histogram.total() - histogram["accepted (total)"]


def write_report(started: float, *, published: int | None) -> str:
    return report_fuzz(
        "ingest",
        cases=cases_run(),
        seconds=time.monotonic() - started,
        histogram=histogram,
        published=published,
    )


def test_no_request_at_the_http_edge_gets_a_5xx_an_echo_or_a_log_of_its_content(
    target, subscriber_client
):
    served, subscription = target
    histogram.clear()
    started = time.monotonic()

    @fuzz_settings(EXAMPLES)
    @given(cases())
    def one(case: Case) -> None:
        data = request_bytes(
            b"", case.headers, method=case.method, path=case.path, framing=case.framing
        )
        response = exchange(served.port, data)
        check(case, response, served.log.new())
        if cases_run() % 1000 == 0:
            write_report(started, published=None)  # a long run can be followed (and stopped)

    one()
    published = pull_all(subscriber_client, subscription, settle=1.0)
    print(write_report(started, published=len(published)))
    assert len(published) == histogram["accepted (total)"]
    assert histogram["accepted (total)"] > 0 and histogram["400 malformed_delivery"] > 0
