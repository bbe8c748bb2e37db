"""What the served fuzzer of ``archive_transcript`` draws, and the oracle that judges each draw.

A case is a whole HTTP request: method, path, headers, framing and a body — a Pub/Sub push
(plain, as a push subscription sends it), the same push as a CloudEvent in binary mode (``ce-*``
headers) or structured mode (``application/cloudevents+json``), other JSON, or bytes — with one
hostile change at one layer: the HTTP request, the push JSON, the Pub/Sub message, the
envelope in its base64 ``data``, or the call object. A CANARY is planted in the transcript,
``task.facts``, an unknown field, attribute values and headers.

The oracle is written from two sources, not from the code under test:

- how functions-framework 3.10 (cloudevents 1.12) turns a request into the CloudEvent the entry
  point receives (read from their source): binary mode when all four of ``ce-specversion``,
  ``ce-id``, ``ce-source`` and ``ce-type`` are present with a version it knows (but a body of
  the type ``application/cloudevents+json`` is read as a structured event all the same);
  otherwise a JSON body with ``specversion`` is a structured event, whatever its content type;
  otherwise, or when either lacks a required attribute or has an unknown version, a push body
  (JSON content type, an object with ``subscription`` and a ``message`` object holding
  ``data`` and ``messageId``, no ``context``) is converted, its publish time filled in with
  "now" when it has none. Anything else never reaches the function: the archivers ack it as
  poison ``not_a_push`` (docs/archive.md). Python's ``json`` reads the request's bytes with
  ``surrogatepass``: raw surrogate bytes there are lone surrogates, not an error. The message
  data inside must be UTF-8 JSON, so the same bytes there are ``bad_json``.
- docs/archive.md's rules for the message the function receives: the poison reasons, in the
  order they are checked, ``ignored`` for other event types, the date of the object prefix
  (``endedAt``, ``startedAt``, the envelope's ``timestamp``, the publish time; UTC), and what
  the index stores (a lone surrogate as its escape text, an integer beyond 64 bits as its
  decimal text).

A call the oracle sends to the archive is a ``Call``; whether it is ``archived`` or
``already_archived`` depends on what earlier cases archived (``Ledger``).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.support.payloads import GOLDEN

CANARY = "QZXarchivecanary"  # in bodies, attributes and headers; never in an answer or the log
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
TOPIC_SOURCE = "//pubsub.googleapis.com/projects/p/topics/t"
SUBSCRIPTION = "projects/p/subscriptions/s"
CALL_ENDED = "call.ended"
MAX_KEY_BYTES = 900  # docs/archive.md: longer keys are poison bad_call_id
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KNOWN_SOURCES = ("webhook", "reconcile", "replay")  # docs/archive.md, "source"
VERSIONS = ("1.0", "0.3")  # the CloudEvents spec versions cloudevents 1.12 reads
# Timestamps a case may carry, and the UTC day each dates a call to (None: not a timestamp).
PUBLISHED = "2026-06-01T10:00:00.123456789Z"  # Pub/Sub writes nanoseconds
DAYS: dict[str, str] = {
    GOLDEN["data"]["endedAt"]: "2026/05/25",
    GOLDEN["data"]["startedAt"]: "2026/05/25",
    GOLDEN["timestamp"]: "2026/05/25",
    "2026-01-02T03:04:05Z": "2026/01/02",
    "2025-12-31T23:30:00-05:00": "2026/01/01",  # UTC, not the local day
    PUBLISHED: "2026/06/01",
}
NOT_TIMES = (None, "", "yesterday", 7, "2026-13-01T00:00:00Z", "\ud800", ["2026-01-02"])
NOW = "now"  # the day functions-framework's own "now" gives a push without publishTime
ABSENT = "(absent)"  # ``Call.indexed``: the index document has no such field
JSON_TYPES = (  # content types Flask reads as JSON (the push conversion needs one)
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",  # the charset is ignored: JSON bytes say their coding
    "APPLICATION/JSON",
    "application/cloudevents+json",
    "application/merge-patch+json",
)
OTHER_TYPES = (
    "text/plain",
    None,
    "application/x-www-form-urlencoded",
    "text/json",
    "application/jsonx",
)
FATAL_DEPTH = 50_000  # a JSON value this deep is a RecursionError for Python's json
LONE = ("\ud800", "\udbff", "\udc00", "\udfff")


_PICKS: dict[str, st.SearchStrategy[Any]] = {}


def pick(*options: Any) -> st.SearchStrategy[Any]:
    """``sampled_from(options)``, built once (rebuilding strategies per draw is slow); each
    draw is a copy, so a case may change the list or dict it drew."""
    key = repr(options)
    if key not in _PICKS:
        _PICKS[key] = st.sampled_from(options).map(copy.deepcopy)
    return _PICKS[key]


def weighted(*pairs: tuple[Any, int]) -> st.SearchStrategy[Any]:
    """Each value about ``weight`` times in the sum. Hypothesis draws the first and the last
    option more often than the others: the heaviest value (the first pair) takes both ends."""
    (first, weight), *rest = pairs
    half = weight // 2
    options = [first] * half + [v for v, w in rest for _ in range(w)] + [first] * (weight - half)
    return pick(*options)


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (in the middle: the ends are drawn more often)."""
    return pick(*[False] * (n // 2), True, *[False] * (n - n // 2 - 1))


# --- what the oracle says ---------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A ``call.ended`` event the function must archive."""

    call_id: str
    day: str  # ``YYYY/MM/DD`` of its object prefix, or NOW
    transcript: bool  # a transcript string: archived; otherwise not_shipped
    unique: bool  # no other case uses this id: the index holds exactly ``indexed``
    indexed: Mapping[str, Any] = field(default_factory=dict)  # field → what the index holds
    redeliver: bool = False  # a value the index stores changed: a redelivery must match it


@dataclass(frozen=True)
class Expected:
    """The answer's status and the function's one log line (``outcome`` None: no line)."""

    status: int
    outcome: str | None = None
    reason: str | None = None
    call: Call | None = None


def poison(reason: str) -> Expected:
    return Expected(200, "poison", reason)


NOT_A_PUSH = poison("not_a_push")
Judge = Callable[[Mapping[str, str], Any], Expected]  # (string attributes, publish time) → verdict


def escaped(text: str) -> str:
    """How the index stores a string: each lone surrogate as the six characters ``\\udXXX``."""
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


def stored(value: Any) -> Any:
    """How the index stores a scalar: strings escaped, integers beyond int64 as decimal text."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    return value


def dumps(value: Any, *, ascii_only: bool) -> bytes:
    """Compact JSON; a lone surrogate is a ``\\u`` escape when ``ascii_only``, else its raw
    bytes (not UTF-8: Python's ``json.loads`` reads bytes with ``surrogatepass``, so the push
    body parses, but message data holding them is ``bad_json``)."""
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def parsed(text: str, ascii_only: bool) -> str:
    """``text`` as the function reads it from ``dumps``: the JSON escapes of a surrogate pair
    are joined into one character, raw surrogate bytes are not."""
    return json.loads(dumps(text, ascii_only=ascii_only))


def key_bytes(call_id: str) -> int:
    """The length of the call's key: its id percent-encoded with nothing left unescaped."""
    return len(quote(call_id, safe="", errors="surrogatepass"))


def day_of(value: Any) -> str | None:
    return DAYS.get(value) if isinstance(value, str) else None


# --- the envelope, in the message's base64 data ------------------------------------------------

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
PASS_THROUGH = ("direction", "status", "endedReason", "durationSeconds", "hasTranscript", "task")
BIG_INTS = (
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    10**30,
    -(10**25),
    int("9" * 40),
)
INT_TARGETS = (
    "durationSeconds",
    "usage.turnCount",
    "usage.inputTokens",
    "quality.p95ResponseLatencyMs",
    "task.facts.amount",
    f"extra{CANARY}",
)
STRING_TARGETS = (
    "direction",
    "status",
    "endedReason",
    "callerNumber",
    "task.script",
    "quality.grade",
    "id",
    "deliveryId",
    "transcript",
    "task.facts.debtor_name",
    "key",
    "event",
)
INDEX_NAME = {  # the index field a call field lands in (docs/archive.md's table)
    "direction": "direction",
    "status": "status",
    "endedReason": "endedReason",
    "durationSeconds": "durationSeconds",
    "callerNumber": "agentNumber",  # the agent's number of an outbound call
    "task.script": "taskScript",
    "quality.grade": "quality.grade",
    "usage.turnCount": "usage.turnCount",
    "usage.inputTokens": "usage.inputTokens",
    "quality.p95ResponseLatencyMs": "quality.p95ResponseLatencyMs",
    "id": "callId",
}


@dataclass
class Envelope:
    """The message's ``data`` (base64 of the envelope's bytes) and the verdict on it."""

    data: Any
    judge: Judge
    note: str


def put(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``data.task.facts.x``; ``deliveryId`` and ``event`` at the top)."""
    *parents, last = path.split(".")
    node = document if parents == [] and last in ("deliveryId", "event") else document["data"]
    for name in parents:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[last] = value


def judged(
    document: Any, indexed: dict[str, Any], *, unique: bool, redeliver: bool = False
) -> Judge:
    """docs/archive.md's rules for an envelope that decodes, in their order."""

    def judge(attributes: Mapping[str, str], published: Any) -> Expected:
        source = attributes.get("source")
        held = {**indexed, "source": source if source in KNOWN_SOURCES else ABSENT}
        if not isinstance(document, dict):
            return poison("not_an_object")
        event = document.get("event")
        if event is None:
            event = attributes.get("event", "")
        if not isinstance(event, str):
            return poison("bad_event")
        if event != CALL_ENDED:
            return Expected(200, "ignored", "unhandled_event")
        call = document.get("data")
        if not isinstance(call, dict):
            return poison("no_call")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id.strip():
            return poison("no_call_id")
        if key_bytes(call_id) > MAX_KEY_BYTES:
            return poison("bad_call_id")
        days = [day_of(call.get("endedAt")), day_of(call.get("startedAt"))]
        days += [day_of(document.get("timestamp")), published if published == NOW else None]
        days.append(day_of(published))
        day = next((d for d in days if d is not None), None)
        if day is None:
            return poison("no_timestamp")
        transcript = isinstance(call.get("transcript"), str)
        call = Call(call_id, day, transcript, unique, held, redeliver)
        return Expected(200, "archive", call=call)

    return judge


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    document = copy.deepcopy(GOLDEN)
    uid = uuid.uuid4().hex  # not drawn: every case's call is new, in every run
    call = document["data"]
    call.update(id=f"v3:{uid}", transcript=f"[Agent] {CANARY} [Caller] yes")
    call["task"]["facts"]["note"] = CANARY
    document["deliveryId"] = f"d-{uid}"
    if draw(st.booleans()):
        call[f"extra{CANARY}"] = CANARY
    for name in draw(st.sets(pick(*PASS_THROUGH), max_size=2)):
        call[name] = draw(any_json)
    if not isinstance(call.get("transcript"), str) and call.get("hasTranscript") is True:
        call["hasTranscript"] = False  # else the archiver asks the vendor API: not fuzzed here
    indexed: dict[str, Any] = {"callId": call["id"]}
    for name in ("direction", "status", "endedReason", "durationSeconds"):
        value = call.get(name)
        if isinstance(value, (str, int, float, bool)) or (value is None and name in call):
            indexed[name] = stored(value)
    indexed["deliveryIds"] = [document["deliveryId"]]
    unique = True
    ascii_only = draw(st.booleans())
    kind = draw(
        weighted(
            ("none", 6),
            ("surrogate", 4),
            ("surrogate_id", 2),
            ("big_int", 3),
            ("odd_id", 3),
            ("timestamps", 3),
            ("event", 3),
            ("no_call", 1),
            ("no_transcript", 1),
            ("constant", 2),
            ("depth", 1),
            ("digits", 1),
            ("not_utf8", 1),
            ("truncated", 1),
            ("not_object", 1),
        )
    )
    note = kind
    if kind == "surrogate":
        lone = draw(pick(*LONE, "\ud83d\ude00"))  # the last: a valid pair, one character
        target = draw(pick(*STRING_TARGETS))
        if target == "key":
            call[f"k{lone}{CANARY}"] = CANARY
        elif target in ("deliveryId", "event"):
            put(document, target, f"{document[target]}{lone}")
            indexed["deliveryIds"] = [escaped(parsed(document["deliveryId"], ascii_only))]
        else:
            value = (
                f"{CANARY}{lone}" if target in ("transcript", "task.facts.debtor_name") else None
            )
            current = call.get(target) if "." not in target else "x"
            value = value or f"{current if isinstance(current, str) else 'x'}{lone}"
            put(document, target, value)
            if target in INDEX_NAME and (
                target != "callerNumber" or call["direction"] == "outbound"
            ):
                indexed[INDEX_NAME[target]] = escaped(parsed(value, ascii_only))
        note = f"surrogate {lone.encode('utf-16-be', 'surrogatepass').hex()} in {target}"
    elif kind == "surrogate_id":  # its tombstone lookup, its key, its index document
        lone = draw(pick(*LONE))
        call["id"] = draw(pick(f"v3:{uid}{lone}", f"{lone}{uid}", f"v3:{lone}:{uid}"))
        indexed["callId"] = escaped(parsed(call["id"], ascii_only))
        note = f"surrogate {lone.encode('utf-16-be', 'surrogatepass').hex()} in the id"
    elif kind == "big_int":
        number, target = draw(pick(*BIG_INTS)), draw(pick(*INT_TARGETS))
        put(document, target, number)
        if target in INDEX_NAME:
            indexed[INDEX_NAME[target]] = stored(number)
        note = f"int {number} in {target}"
    elif kind == "odd_id":
        value, unique = draw(odd_ids(uid))
        call["id"] = value
        indexed["callId"] = stored(value) if isinstance(value, str) else None
        note = f"id {value!r:.60}"
    elif kind == "timestamps":  # each of the three absent, not a time, or another time
        for name, node in (("endedAt", call), ("startedAt", call), ("timestamp", document)):
            choice = draw(
                weighted(("absent", 3), *((t, 1) for t in NOT_TIMES), *((t, 1) for t in DAYS))
            )
            if choice == "absent":
                node.pop(name, None)
            else:
                node[name] = choice
        note = "timestamps " + " ".join(
            repr(node.get(name))[:30]
            for name, node in (("endedAt", call), ("startedAt", call), ("timestamp", document))
        )
    elif kind == "event":
        choice = draw(
            pick(
                "absent",
                None,
                "call.started",
                "",
                "CALL.ENDED",
                "call.ended ",
                7,
                ["call.ended"],
                {},
            )
        )
        if choice == "absent":
            del document["event"]
        else:
            document["event"] = choice
        note = f"event {choice!r}"
    elif kind == "no_call":
        choice = draw(pick("absent", None, [], "x", 7))
        if choice == "absent":
            del document["data"]
        else:
            document["data"] = choice
        note = f"data {choice!r}"
    elif kind == "no_transcript":
        del call["transcript"]
        call["hasTranscript"] = draw(pick(False, None, "yes", 1))  # only True asks the API
    elif kind == "constant":
        constant = draw(pick(float("nan"), float("inf"), float("nan"), float("-inf")))
        target = draw(pick("durationSeconds", "quality.p95ResponseLatencyMs"))
        put(document, target, constant)
        indexed.pop(INDEX_NAME.get(target, ""), None)  # NaN is never equal to itself
        note = f"{constant} in {target}"
    elif kind == "depth":
        depth = draw(pick(5, 50, FATAL_DEPTH))
        raw = dumps(document, ascii_only=ascii_only).replace(
            b'"data":{', b'"data":{"deep":' + b"[" * depth + b"]" * depth + b",", 1
        )
        note = f"depth {depth}"
        if depth == FATAL_DEPTH:
            return Envelope(encoded(raw), bad("bad_json"), note)
        return Envelope(encoded(raw), judged(json.loads(raw), indexed, unique=unique), note)
    elif kind == "digits":
        raw = dumps(document, ascii_only=ascii_only).replace(
            b'"data":{', b'"data":{"n":' + b"9" * 5000 + b",", 1
        )
        return Envelope(encoded(raw), bad("bad_json"), "5000 digits")  # Python's int limit
    elif kind == "not_utf8":
        byte = draw(
            pick(b"\xff", b"\xc3(", b"\xf4\x90\x80\x80", b"\x80")
        )  # \xf4\x90: past U+10FFFF
        raw = dumps(document, ascii_only=ascii_only).replace(
            b'"data":{', b'"data":{"bad":"%s%s",' % (CANARY.encode(), byte), 1
        )
        return Envelope(encoded(raw), bad("bad_json"), f"not UTF-8 {byte!r}")
    elif kind == "truncated":
        raw = dumps(document, ascii_only=ascii_only)
        cut = draw(st.integers(1, len(raw) - 1))
        return Envelope(encoded(raw[:cut]), bad("bad_json"), f"truncated at {cut}")
    elif kind == "not_object":
        raw = draw(pick(b"[]", b'"s"', b"1", b"null", b"[{}]"))
        return Envelope(encoded(raw), bad("not_an_object"), f"envelope {raw!r}")
    raw = dumps(document, ascii_only=ascii_only)
    try:  # the message data must be UTF-8 JSON: raw surrogate bytes are not (docs: bad_json)
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return Envelope(encoded(raw), bad("bad_json"), f"{note} (raw bytes: not UTF-8)")
    redeliver = kind in ("surrogate", "surrogate_id", "big_int", "constant")
    # judged as JSON reads the bytes: a surrogate pair's escapes are one character, raw bytes not
    judge = judged(json.loads(raw), indexed, unique=unique, redeliver=redeliver)
    return Envelope(encoded(raw), judge, note)


def bad(reason: str) -> Judge:
    return lambda attributes, published: poison(reason)


@st.composite
def odd_ids(draw: st.DrawFn, uid: str) -> tuple[Any, bool]:
    """An odd call id, and whether no other case can draw the same."""
    shared = (".", "..", "__x__", "%", "/", "é", "\x00")
    blank = ("", " ", "\t\n", None, 7, ["v3:x"], {"id": "x"})
    kind = draw(pick("shared", "blank", "unique", "length"))
    if kind == "shared":
        return draw(pick(*shared)), False
    if kind == "blank":
        return draw(pick(*blank)), True
    if kind == "length":  # keys of exactly 900 and 901 bytes, in one-, three- and six-byte units
        unit, count = draw(
            pick(("x", 868), ("x", 869), (":", 289), (":", 290), ("é", 144), ("é", 145))
        )
        return uid + unit * count, True  # uid: 32 bytes, ':' → %3A, 'é' → %C3%A9
    form = draw(
        pick(
            "v3/{}",
            "%{}%",
            " {} ",
            "__{}__",
            "{}\n",
            "\x00{}",
            "{}é",
            "{}\U0001f600",
            "{}\\ud800",
            "{}\udc00",  # a lone surrogate: its tombstone lookup, key and index field
        )
    )
    return form.format(uid), True


# --- the Pub/Sub message and the push JSON around it -------------------------------------------

HOSTILE_SOURCES = (
    "", "WEBHOOK", "webhook\n", "x" * 300, "\ud800", "reconcile ", "null", f"webhook {CANARY}"
)  # fmt: skip
# The ``source`` attribute is logged only when it is a known one, else as ``other``: a canary
# in it must never reach the log.


@dataclass
class Push:
    """A push body as an object (before it is serialized), and what the function makes of it."""

    body: Any
    envelope: Envelope
    faults: list[str]  # the push-level change (at most one), for the note
    fatal: bool = False  # a value Python's json cannot read (depth, digits): nothing parses it
    data_judge: Judge | None = None  # the message's data was changed: this verdict instead

    def note(self) -> str:
        return f"push[{','.join(self.faults) or 'ok'}] envelope[{self.envelope.note}]"


@st.composite
def pushes(draw: st.DrawFn) -> Push:
    envelope = draw(envelopes())
    source = draw(
        weighted(
            *((s, 3) for s in KNOWN_SOURCES), ("absent", 2), *((s, 1) for s in HOSTILE_SOURCES)
        )
    )
    attributes: dict[str, Any] = {"event": CALL_ENDED, "note": CANARY}
    if source != "absent":
        attributes["source"] = source
    message: dict[str, Any] = {
        "data": envelope.data,
        "attributes": attributes,
        "messageId": str(draw(st.integers(10**15, 10**16 - 1))),
        "publishTime": PUBLISHED,
    }
    push = Push({"message": message, "subscription": SUBSCRIPTION}, envelope, [])
    fault = draw(
        weighted(
            ("none", 12),
            ("no_message", 1),
            ("message_not_object", 1),
            ("no_data", 1),
            ("no_message_id", 1),
            ("no_subscription", 1),
            ("context", 1),
            ("data_not_text", 1),
            ("bad_base64", 2),
            ("message_id", 1),
            ("attributes", 2),
            ("publish_time", 2),
            ("extra", 2),
            ("fatal", 1),
            ("specversion", 1),
        )
    )
    if envelope.note.startswith("timestamps") and draw(st.booleans()):
        fault = "publish_time"  # the same change, one layer up: nothing may date the call
    if fault == "none":
        return push
    push.faults.append(fault)
    body = push.body
    if fault == "no_message":
        del body["message"]
    elif fault == "message_not_object":
        body["message"] = draw(pick("data messageId", ["data", "messageId"], 7, None))
    elif fault in ("no_data", "no_message_id"):
        del message["data" if fault == "no_data" else "messageId"]
    elif fault == "no_subscription":
        del body["subscription"]
    elif fault == "context":
        body["context"] = draw(pick({}, {"eventId": "1"}, None))
    elif fault == "data_not_text":
        message["data"] = draw(pick(7, None, [envelope.data], {"b": 1}, ""))
        push.data_judge = bad("no_data")
    elif fault == "bad_base64":
        data = envelope.data  # outside the alphabet, or its padding broken
        message["data"] = draw(
            pick("%%%" + CANARY, " " + data, data + "-_", data + "\n", data[:-1])
        )
        push.data_judge = bad("bad_base64")
    elif fault == "message_id":
        message["messageId"] = draw(pick(7, None, "", "x" * 2000, "é\ud800", {"id": 1}))
    elif fault == "attributes":
        message["attributes"] = draw(
            pick(
                [CANARY],
                CANARY,
                None,
                {"event": 7, "k": CANARY},
                {"event": CALL_ENDED, f"\ud800{CANARY}": CANARY, "e": "é"},
                {"event": "call.started"},
                {},
            )
        )
    elif fault == "publish_time":
        choice = draw(pick("absent", *NOT_TIMES, "2026-01-02T03:04:05Z"))
        if choice == "absent":
            del message["publishTime"]
        else:
            message["publishTime"] = choice
    elif fault == "extra":
        where = draw(pick("top", "message"))
        value = draw(
            pick(float("nan"), 10**30, [[[[[1]]]]], f"\ud800{CANARY}", CANARY, {"a": None})
        )
        (body if where == "top" else message)[f"x{CANARY}"] = value
    elif fault == "fatal":
        where = draw(pick("top", "message"))
        (body if where == "top" else message)["x"] = draw(pick("deep", "digits"))
        push.fatal = True
    elif fault == "specversion":
        body["specversion"] = draw(pick("1.0", "2.0", [1]))
    return push


def push_bytes(push: Push, *, ascii_only: bool) -> bytes:
    raw = dumps(push.body, ascii_only=ascii_only)
    if push.fatal:
        fill = b"[" * FATAL_DEPTH + b"]" * FATAL_DEPTH if b'"x":"deep"' in raw else b"9" * 5000
        raw = raw.replace(b'"x":"deep"', b'"x":' + fill, 1).replace(
            b'"x":"digits"', b'"x":' + fill, 1
        )
    return raw


def string_attributes(attributes: Any) -> dict[str, str]:
    if not isinstance(attributes, dict):
        return {}
    return {k: v for k, v in attributes.items() if isinstance(v, str)}


def judge_message(push: Push, message: Any, *, converted: bool) -> Expected:
    """The verdict on the Pub/Sub message the function receives (``converted``: made from a
    push body by functions-framework, which fills in a missing publish time)."""
    if not isinstance(message, dict):
        return poison("no_message")
    data = message.get("data")
    if not isinstance(data, str) or not data:
        return poison("no_data")
    published = message.get("publishTime", NOW) if converted else message.get("publishTime")
    judge = push.data_judge or push.envelope.judge
    return judge(string_attributes(message.get("attributes")), published)


def judge_event_data(push: Push, data: Any) -> Expected:
    """The verdict on a CloudEvent's data (binary or structured mode): the push object."""
    if not isinstance(data, dict):
        return poison("no_message")
    return judge_message(push, data.get("message"), converted=False)


def judge_push_conversion(push: Push, parses: bool, json_type: bool, binary: bool) -> Expected:
    """functions-framework's conversion of a request body that is not a CloudEvent
    (``binary``: the four ``ce-*`` headers are there, so the body was not read as one)."""
    body = push.body
    if not parses or push.fatal or not json_type:
        return NOT_A_PUSH
    if not binary and isinstance(body, dict) and isinstance(body.get("specversion"), list):
        return NOT_A_PUSH  # an unhashable version: cloudevents fails looking it up
    if not isinstance(body, dict) or "context" in body or "subscription" not in body:
        return NOT_A_PUSH
    message = body.get("message")
    if not isinstance(message, dict) or "data" not in message or "messageId" not in message:
        return NOT_A_PUSH
    seen = {
        "data": message["data"],
        "attributes": message.get("attributes", {}),
        "publishTime": message.get("publishTime", NOW),
    }
    return judge_message(push, seen, converted=True)


# --- the whole request -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    headers: list[tuple[str, str]]
    framing: bytes
    expect: Expected
    twice: bool  # sent twice: the second answer must find the first's work done
    note: str


def header_value(value: str) -> str:
    return value.encode("utf-8").decode("latin-1")  # raw bytes in a header, as a client sends


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]], Expected, str]:
    """(body, headers, verdict, note) of a POST."""
    mode = draw(weighted(("push", 10), ("binary", 3), ("structured", 2), ("json", 1), ("bytes", 1)))
    headers: list[tuple[str, str]] = []
    if mode in ("json", "bytes"):
        content_type = draw(pick(*JSON_TYPES, *OTHER_TYPES))
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if mode == "json":
            value = draw(any_json)
            body = dumps(
                [value, CANARY] if draw(st.booleans()) else {"k": value, "c": CANARY},
                ascii_only=True,
            )
        else:
            junk = draw(st.binary(max_size=120))
            body = junk[: len(junk) // 2] + CANARY.encode() + junk[len(junk) // 2 :]
        return body, headers, NOT_A_PUSH, f"{mode} {content_type}"

    push = draw(pushes())
    ascii_only = draw(st.booleans())
    parses = True  # so far: raw surrogate bytes are read as their escapes (``dumps``)
    if mode == "structured":
        return structured(draw, push, ascii_only, parses)
    body = push_bytes(push, ascii_only=ascii_only)
    if mode == "push" and draw(one_in(8)):  # a change at the HTTP layer of a good push
        change = draw(pick("truncated", "not_utf8", "not_object"))
        if change == "truncated":
            body = body[: draw(st.integers(1, len(body) - 1))]
        elif change == "not_utf8":
            body = body.replace(b'"subscription":"', b'"subscription":"\xff', 1)
        else:
            body = draw(pick(b"[]", b'"s"', b"1", b"null", b"true"))
        push = Push(json.loads(body) if change == "not_object" else None, push.envelope, [change])
        parses = change == "not_object"
    content_type = draw(
        weighted((JSON_TYPES[0], 12), *((t, 1) for t in JSON_TYPES[1:] + OTHER_TYPES))
    )
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    json_type = content_type in JSON_TYPES
    if mode == "push":
        verdict = judge_push_conversion(push, parses, json_type, binary=False)
        return body, headers, verdict, f"push {content_type} {push.note()}"

    # binary mode: the four required ce-* headers (or not), with odd values
    version = draw(weighted(("1.0", 4), ("0.3", 1), ("2.0", 1), ("", 1), (CANARY, 1)))
    event_type = draw(
        weighted((PUBSUB_TYPE, 5), ("", 1), (f"x.{CANARY}", 1), (PUBSUB_TYPE.upper(), 1))
    )
    ce = {
        "ce-specversion": version,
        "ce-id": draw(pick("1", "", CANARY, "é" * 3)),
        "ce-source": draw(pick(TOPIC_SOURCE, "", CANARY)),
        "ce-type": event_type,
    }
    missing = draw(pick(None, None, None, *ce))
    ce = {k: v for k, v in ce.items() if k != missing}
    if draw(one_in(3)):
        ce[draw(pick("ce-time", "ce-datacontenttype", "ce-subject", "ce-x"))] = draw(
            pick("nope", CANARY, "text/plain")
        )
    headers += [(name, header_value(value)) for name, value in ce.items()]
    note = f"binary {version!r} {event_type!r:.30} missing={missing} {content_type} {push.note()}"
    structured_type = (content_type or "").startswith("application/cloudevents+json")
    if missing is not None or version not in VERSIONS or structured_type:
        # cloudevents reads a body of the structured type as a structured event even with the
        # four headers: a push body has no id, source or type, so it falls back all the same
        verdict = judge_push_conversion(push, parses, json_type, binary=missing is None)
        return body, headers, verdict, note
    if push.fatal:
        return body, headers, NOT_A_PUSH, note  # the body cannot be read: not a push
    if event_type != PUBSUB_TYPE:
        return body, headers, poison("not_pubsub"), note
    if not parses:
        return body, headers, poison("bad_event_data"), note
    if isinstance(push.body, str):  # a JSON string: the function reads it as JSON again
        return body, headers, poison("bad_event_data"), note
    return body, headers, judge_event_data(push, push.body), note


def structured(
    draw: st.DrawFn, push: Push, ascii_only: bool, parses: bool
) -> tuple[bytes, list[tuple[str, str]], Expected, str]:
    """The push object as the data of a structured-mode CloudEvent."""
    event: dict[str, Any] = {
        "specversion": draw(weighted(("1.0", 5), ("0.3", 1), ("2.0", 1))),
        "id": draw(pick("1", 7, CANARY)),
        "source": TOPIC_SOURCE,
        "type": draw(weighted((PUBSUB_TYPE, 5), ("x", 1), (CANARY, 1))),
        "datacontenttype": "application/json",
        "data": push.body,
    }
    change = draw(weighted(("none", 5), ("missing", 1), ("no_data", 1), ("data_base64", 1)))
    if change == "missing":
        del event[draw(pick("id", "source", "type"))]
    elif change == "no_data":
        del event["data"]
    elif change == "data_base64" and not push.fatal and parses:
        del event["data"]
        event["data_base64"] = encoded(dumps(push.body, ascii_only=True))
    body = dumps(event, ascii_only=ascii_only)
    fatal = push.fatal and "data" in event  # the unreadable value is in the push
    if fatal:
        body = body.replace(b'"x":"deep"', b'"x":' + b"[" * FATAL_DEPTH + b"]" * FATAL_DEPTH, 1)
        body = body.replace(b'"x":"digits"', b'"x":' + b"9" * 5000, 1)
    content_type = draw(
        pick(
            "application/cloudevents+json",
            "application/cloudevents+json; charset=utf-8",
            "application/json",
            "text/plain",
        )
    )
    headers = [("Content-Type", content_type)]
    note = f"structured {event['specversion']} {event.get('type')!r:.20} {change} {push.note()}"
    if not parses or fatal:
        return body, headers, NOT_A_PUSH, note
    if change == "missing" or event["specversion"] not in VERSIONS:
        return body, headers, NOT_A_PUSH, note  # no push shape to fall back on either
    if event["type"] != PUBSUB_TYPE:
        return body, headers, poison("not_pubsub"), note
    if change == "no_data":
        return body, headers, poison("no_message"), note
    return body, headers, judge_event_data(push, push.body), note


# Every path reaches the function (its route is /<path:path>); "/" at both ends, drawn most.
PATHS = ("/", "/", "/anything", "/?q=1", "/projects/p/topics/t", "/robots.txt", "/%ff", "//x", "/")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    method = draw(
        weighted(
            ("POST", 40),
            ("GET", 1),
            ("HEAD", 1),
            ("PUT", 1),
            ("DELETE", 1),
            ("OPTIONS", 1),
            ("PATCH", 1),
        )
    )
    path = draw(pick(*PATHS))
    body, headers, expect, note = draw(bodies())
    if method != "POST":
        expect = Expected(405)  # the route takes POST only: werkzeug's own 405, no log line
    headers.append((f"X-Extra-{draw(st.integers(0, 9))}", CANARY))
    if draw(one_in(6)):
        headers.append(("Expect", "100-continue"))
    if draw(one_in(3)):
        headers.append(("Transfer-Encoding", "chunked"))
        cut = draw(st.integers(0, len(body)))
        pieces = [piece for piece in (body[:cut], body[cut:]) if piece]
        framing = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        headers.append(("Content-Length", str(len(body))))
        framing = body
    headers.append(("Connection", "close"))
    draw(st.randoms(use_true_random=False)).shuffle(headers)
    redeliver = expect.call is not None and expect.call.redeliver and expect.status == 200
    twice = redeliver or (expect.outcome is not None and draw(one_in(8)))
    return Case(method, path, headers, framing, expect, twice, f"{method} {path} {note}")


# --- what earlier cases archived ----------------------------------------------------------------


def today() -> str:
    return datetime.now(UTC).strftime("%Y/%m/%d")


@dataclass
class Ledger:
    """What the archive holds after the cases so far: per (call id, day), ``call.json`` only
    (not_shipped) or the transcript too."""

    parts: dict[tuple[str, str], str] = field(default_factory=dict)  # → "call" or "transcript"
    calls: dict[str, Call] = field(default_factory=dict)  # the last Call per id

    def outcome(self, call: Call) -> str:
        day = today() if call.day == NOW else call.day
        held = self.parts.get((call.call_id, day))
        if not call.transcript:
            outcome = "not_shipped"
        else:
            outcome = "already_archived" if held == "transcript" else "archived"
        self.parts[(call.call_id, day)] = "transcript" if call.transcript else held or "call"
        self.calls[call.call_id] = call
        return outcome
