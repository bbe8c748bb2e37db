"""Pub/Sub push CloudEvents for fuzzing the archivers: valid ones, one hostile change at one
layer, and the verdict the docs give for each.

A valid push is built the way functions-framework builds one (``tests/support/archive.py``):
a ``cloudevents.http.CloudEvent`` of type ``google.cloud.pubsub.topic.v1.messagePublished``
whose data is the push body ``{"message": {"data": base64(envelope), "attributes",
"messageId", "publishTime"}, "subscription"}``, with the envelope and its call as the vendor
sends them. ``hostile_pushes`` makes one change at one layer (the CloudEvent, the push body,
the message's base64, its bytes and JSON, the envelope, the call id, the timestamps, the
attributes, the message id) and states the verdict docs/archive.md ("Acks, retries and poison
messages") gives for the result: decoded, ``ignored`` or ``poison`` with its ``reason``. The
verdicts are this module's reading of the docs, written without the decoder's code.

``CANARY`` is planted wherever a value must never reach a log line: the transcript, ``task``,
unknown fields, attribute values, the subscription, the CloudEvent's own source and id,
timestamps, and ids or event types that are not valid. The values logged by design never
carry it: a valid call id, a ``deliveryId`` or ``messageId`` string, the ``event`` of an
ignored message, a known ``source``. ``not_pushes`` draws things that are no push at all.

A served fuzzer can send ``Push.body`` (when it is a dict) as the JSON body of a push request,
or ``Push.data`` as the body of a binary-mode CloudEvent of ``Push.event_type``. Served, a push
whose message has no ``data`` field (``change`` ``missing``) is refused by functions-framework
itself with a 400 (docs/archive.md) before the decoder sees it.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent
from hypothesis import strategies as st

from tests.support.payloads import GOLDEN, encode
from ttma_relay.contract.call_event import PUBSUB_EVENT_TYPE
from ttma_relay.contract.messages import message_attributes

CANARY = "QZXpushcanary"
CE_SOURCE = f"//pubsub.googleapis.com/projects/{CANARY}/topics/ttma-call-events"
SUBSCRIPTION = f"projects/{CANARY}/subscriptions/archive"
SOURCES = ("webhook", "reconcile", "replay")  # restated: the oracle does not import the code's
DECODED, IGNORED, POISON = "decoded", "ignored", "poison"
UNHANDLED = "unhandled_event"
MAX_KEY_BYTES = 900  # docs/archive.md: a call id longer than this once encoded is poison
LOGGED_EVENT_CHARS = 100  # an ignored line's event: the first 100 characters (the code's cap)
STRICT_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
# Python's strict base64 also takes "=" after a last complete group ("QUJD=" is "ABC"): the
# bytes are those without it, so the message is the same, and that is accepted too.
PADDED_AFTER_A_GROUP = re.compile(r"(?:[A-Za-z0-9+/]{4})+=+")
# Percent-encoding (RFC 3986) leaves only the unreserved characters as they are.
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
GOOD_TIMES = (
    "2026-05-25T14:35:12.000Z",
    "2026-05-25T14:35:12+02:00",
    "2026-05-25T14:35:12",  # no offset: UTC
    "2026-05-25",
)
BAD_TIMES = (
    "",
    " ",
    "yesterday",
    "2026-13-01T00:00:00Z",
    "2026-05-25T25:00:00Z",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    1748183712,
    None,
    [CANARY],
    {"at": CANARY},
    CANARY,
    f"2026-05-25T{CANARY}",
)


@dataclass(frozen=True)
class Verdict:
    """What the archivers must make of a push.

    ``outcome`` is ``decoded``, ``ignored`` or ``poison``; ``reason`` the poison reason (or
    ``unhandled_event`` when ignored); ``event`` the event type an ignored line names;
    ``call_id`` the id a line names (that of a decoded call, or of a valid one nothing dates);
    ``source`` the ``source`` a decoded line shows (``None``: no such field)."""

    outcome: str
    reason: str | None = None
    event: str | None = None
    call_id: str | None = None
    source: str | None = None


def poison(reason: str) -> Verdict:
    return Verdict(POISON, reason)


def ignored(event: str) -> Verdict:
    return Verdict(IGNORED, UNHANDLED, event=event)


@dataclass(frozen=True)
class Push:
    """A push as functions-framework hands it over: the CloudEvent's ``event_type`` and
    ``data`` (the push body, or what a change put there), the verdict, and what was changed."""

    event_type: Any
    data: Any
    verdict: Verdict
    layer: str
    change: str

    @property
    def body(self) -> dict[str, Any] | None:
        return self.data if isinstance(self.data, dict) else None

    def cloud_event(self) -> CloudEvent:
        return CloudEvent(
            {"type": self.event_type, "source": CE_SOURCE, "id": f"ce-{CANARY}"}, self.data
        )


def choice(draw: st.DrawFn, *options: Any) -> Any:
    """One of ``options`` (any values: ``sampled_from`` needs no hashing)."""
    return draw(st.sampled_from(options))


def logged_source(attributes: Any) -> str | None:
    """The ``source`` a decoded line shows (docs/archive.md): a known one as it is, ``other``
    for any other string, nothing without one (no attributes, not a string, empty)."""
    value = attributes.get("source") if isinstance(attributes, dict) else None
    if not isinstance(value, str) or value == "":
        return None
    return value if value in SOURCES else "other"


def key_bytes(call_id: str) -> int:
    """The length of a call id percent-encoded (UTF-8, lone surrogates as their 3 bytes), with
    the escapes docs/archive.md's Firestore-safe key adds (``.``/``..``, ``__x__``)."""
    length = sum(
        1 if char in UNRESERVED else 3 * len(char.encode("utf-8", "surrogatepass"))
        for char in call_id
    )
    if call_id in (".", ".."):
        length += 2 * len(call_id)
    elif len(call_id) >= 4 and call_id.startswith("__") and call_id.endswith("__"):
        length += 2
    return length


def id_verdict(call_id: Any, source: str | None) -> Verdict:
    """The verdict on a call id, everything else valid."""
    if not isinstance(call_id, str) or all(char.isspace() for char in call_id):
        return poison("no_call_id")
    if key_bytes(call_id) > MAX_KEY_BYTES:
        return poison("bad_call_id")
    return Verdict(DECODED, call_id=call_id, source=source)


# --- a valid push --------------------------------------------------------------------------


@dataclass
class Draft:
    """A push being built: each layer on its own, so a change can edit one of them."""

    call: dict[str, Any]
    envelope: dict[str, Any]
    attributes: Any
    message: dict[str, Any]
    body: dict[str, Any]
    raw: bytes | None = None  # the message data's bytes when a change wrote them
    data: Any = None  # the message's data field when a change wrote it
    keep_data: bool = True  # False: the message has no data field

    def verdict(self) -> Verdict:
        return Verdict(DECODED, call_id=self.call["id"], source=logged_source(self.attributes))

    def push_body(self) -> dict[str, Any]:
        message = dict(self.message)
        if self.attributes is not _ABSENT:
            message["attributes"] = self.attributes
        if self.keep_data:
            raw = self.raw if self.raw is not None else json_bytes(self.envelope)
            message["data"] = self.data if self.data is not None else b64(raw)
        return {**self.body, "message": message}

    def push(self, verdict: Verdict, layer: str, change: str) -> Push:
        return Push(PUBSUB_EVENT_TYPE, self.push_body(), verdict, layer, change)


_ABSENT: Any = object()  # a field left out


def json_bytes(value: Any) -> bytes:
    """``value`` as the vendor sends JSON; all ASCII when it holds a lone surrogate (a ``\\u``
    escape is its only form in UTF-8 JSON)."""
    try:
        return encode(value)
    except UnicodeEncodeError:
        return encode(value, ascii_only=True)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# Few ids to draw from: the ids are a layer of their own below, and a wide draw here (a UUID)
# would have Hypothesis vary it while the changes after it hardly vary.
CALL_IDS = tuple(f"v3:{n:032x}" for n in (0xA11, 0xB0B, 0xC0FFEE, 0xD00D, 2**127 - 1))
DELIVERY_IDS = (
    "a1b2c3d4-0000-4000-8000-000000000001",
    "reconcile:v3:abc123",
    "d",
    "é ☎",
    "x" * 1024,
)
MESSAGE_IDS = ("1000000000000001", "17234567890123456", "1")


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """A valid push of a ``call.ended`` envelope, canaries where nothing may be logged."""
    call = copy.deepcopy(GOLDEN["data"])
    call["id"] = choice(draw, *CALL_IDS)
    call["transcript"] = f"[Agent] Hi, {CANARY}. [Caller] Yeah, this is {CANARY}."
    call["task"]["goal"] = f"Collect $154.56 from {CANARY}"
    call["task"]["facts"]["debtor_name"] = CANARY
    call[f"unknown{CANARY}"] = {"note": CANARY}
    envelope = {
        "event": "call.ended",
        "deliveryId": choice(draw, *DELIVERY_IDS),
        "timestamp": GOOD_TIMES[0],
        "data": call,
        f"extra{CANARY}": CANARY,
    }
    attributes = message_attributes(envelope, choice(draw, *SOURCES))
    attributes.update({f"x-{CANARY}": CANARY, "deliveryId": CANARY, "callId": CANARY})
    message = {"messageId": choice(draw, *MESSAGE_IDS), "publishTime": GOOD_TIMES[0]}
    return Draft(call, envelope, attributes, message, {"subscription": SUBSCRIPTION})


@st.composite
def valid_pushes(draw: st.DrawFn) -> Push:
    draft = draw(drafts())
    return draft.push(draft.verdict(), "valid", "none")


# --- one hostile change at one layer ----------------------------------------------------------

OTHER_TYPES = (
    CANARY,
    "",
    "google.cloud.storage.object.v1.finalized",
    PUBSUB_EVENT_TYPE.upper(),
    PUBSUB_EVENT_TYPE + " ",
    PUBSUB_EVENT_TYPE + CANARY,
    5,
    None,
    [CANARY],
    {"type": CANARY},
)


def cloud_event_change(draw: st.DrawFn, draft: Draft) -> Push:
    body = draft.push_body()
    kind = choice(draw, "type", "data", "body")
    if kind == "type":
        event_type = choice(draw, *OTHER_TYPES)
        return Push(event_type, body, poison("not_pubsub"), "cloud event", "type")
    if kind == "data":
        data, verdict, change = choice(
            draw,
            (None, poison("no_message"), "none"),
            (5, poison("no_message"), "a number"),
            (True, poison("no_message"), "a boolean"),
            ([CANARY], poison("no_message"), "a list"),
            ("", poison("bad_event_data"), "empty text"),
            (f"{{{CANARY}", poison("bad_event_data"), "text, not JSON"),
            (b"\xff" + CANARY.encode(), poison("bad_event_data"), "bytes, not UTF-8"),
            ("[" * 100_000 + "]" * 100_000, poison("bad_event_data"), "JSON too deep"),
            (json.dumps([CANARY]), poison("no_message"), "JSON of a list"),
            ("null", poison("no_message"), "JSON null"),
            (json.dumps(body), draft.verdict(), "the body as JSON text"),
            (json_bytes(body), draft.verdict(), "the body as JSON bytes"),
        )
        return Push(PUBSUB_EVENT_TYPE, data, verdict, "cloud event", f"data: {change}")
    message = choice(draw, _ABSENT, None, 5, CANARY, [body["message"]], {})
    broken = {"subscription": SUBSCRIPTION}
    if message is not _ABSENT:
        broken["message"] = message
    verdict = poison("no_message") if message != {} else poison("no_data")
    return Push(PUBSUB_EVENT_TYPE, broken, verdict, "push body", "message")


def base64_change(draw: st.DrawFn, draft: Draft) -> Push:
    if draw(st.booleans()):  # three "?" in a row: the base64 has a "/" (the vendor's has none)
        draft.call["transcript"] += " ???"
    text = b64(json_bytes(draft.envelope))
    kind = choice(
        draw,
        "missing",
        "empty",
        "not a string",
        "garbage",
        "unpadded",
        "over-padded",
        "urlsafe",
        "spaces",
        "newlines",
        "non-ASCII",
        "truncated",
    )
    if kind == "missing":
        draft.keep_data = False
        return draft.push(poison("no_data"), "message data", kind)
    if kind == "empty":
        draft.data = ""
        return draft.push(poison("no_data"), "message data", kind)
    if kind == "not a string":
        draft.data = choice(draw, 5, True, [CANARY], {"data": CANARY}, 1.5)
        return draft.push(poison("no_data"), "message data", kind)
    changed = {
        "garbage": f"%%{CANARY}%%",
        "unpadded": text.rstrip("="),
        "over-padded": text + "=",
        "urlsafe": text.replace("+", "-").replace("/", "_"),
        "spaces": text[:8] + " " + text[8:],
        "newlines": "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
        "non-ASCII": "é" + text,
        "truncated": text[:-1],
    }[kind]
    # Standard base64, strictly: then it still decodes to the same bytes (each change above
    # leaves a strictly valid text only where it changed nothing).
    valid = changed.isascii() and any(
        pattern.fullmatch(changed) for pattern in (STRICT_BASE64, PADDED_AFTER_A_GROUP)
    )
    draft.data = changed
    verdict = draft.verdict() if valid else poison("bad_base64")
    return draft.push(verdict, "message data", f"{kind}{'' if valid else ' (invalid)'}")


def splice(envelope: dict[str, Any], where: str, member: str, *, first: bool = False) -> bytes:
    """The envelope's JSON with ``member`` (raw JSON text) added to the envelope or its call,
    as its first or last member."""
    text = json_bytes(envelope).decode("utf-8")
    if where == "call":
        head, tail = text.split('"data":{', 1)
        if first:
            return f'{head}"data":{{{member},{tail}'.encode()
        call_text = json_bytes(envelope["data"]).decode("utf-8")
        return text.replace(call_text, call_text[:-1] + f",{member}}}", 1).encode()
    if first:
        return ("{" + member + "," + text[1:]).encode()
    return (text[:-1] + f",{member}}}").encode()


def bytes_change(draw: st.DrawFn, draft: Draft) -> Push:
    raw = json_bytes(draft.envelope)
    digits_limit = sys.get_int_max_str_digits() or 10**9
    kind = choice(
        draw,
        "not UTF-8",
        "UTF-16",
        "UTF-32",
        "BOM",
        "encoded surrogate",
        "truncated",
        "trailing garbage",
        "trailing blanks",
        "not JSON",
        "not an object",
        "NaN",
        "duplicate keys",
        "depth",
        "digits",
        "escaped surrogate",
    )
    verdict = draft.verdict()
    change = kind
    if kind == "not UTF-8":
        raw = choice(draw, b"\xff" + raw, raw.replace(b"Hi,", b"Hi\xe9,", 1), raw[:-1] + b"\x80}")
        verdict = poison("bad_json")
    elif kind in ("UTF-16", "UTF-32"):  # JSON, but not UTF-8 JSON
        raw = raw.decode("utf-8").encode(choice(draw, kind.lower(), kind.lower() + "-le"))
        verdict = poison("bad_json")
    elif kind == "BOM":  # RFC 8259: JSON text has none
        raw = b"\xef\xbb\xbf" + raw
        verdict = poison("bad_json")
    elif kind == "encoded surrogate":  # a surrogate's 3 bytes are not UTF-8
        raw = raw.replace(b"Hi,", b"Hi\xed\xa0\x80,", 1)
        verdict = poison("bad_json")
    elif kind == "truncated":
        raw = raw[: draw(st.integers(1, len(raw) - 1))]
        verdict = poison("bad_json")
    elif kind == "trailing garbage":
        raw += choice(draw, b"x", b",", b"{}", b"\x00", CANARY.encode())
        verdict = poison("bad_json")
    elif kind == "trailing blanks":
        raw += choice(draw, b" ", b"\n", b"\r\n\t ")
    elif kind == "not JSON":
        raw = choice(draw, b" ", b"{" + CANARY.encode(), b"{'event': 'call.ended'}", b"undefined")
        verdict = poison("bad_json")
    elif kind == "not an object":
        raw = choice(draw, b"[]", b"1", b"null", b"true", f'"{CANARY}"'.encode())
        raw = choice(draw, raw, json_bytes([draft.envelope]))
        verdict = poison("not_an_object")
    elif kind == "NaN":
        # Python's JSON, as the decoder reads the message: NaN and Infinity parse. Ingest never
        # publishes them (docs/architecture.md, "Strict UTF-8 JSON"); reconcile passes on what
        # the vendor's API returned.
        constant = choice(draw, "NaN", "Infinity", "-Infinity")
        raw = splice(draft.envelope, choice(draw, "envelope", "call"), f'"n":{constant}')
        change = f"NaN ({constant})"
    elif kind == "duplicate keys":  # the last one wins, as Python's JSON reads them
        where, member, last_verdict = choice(
            draw,
            ("envelope", '"event":"call.started"', ignored("call.started")),
            ("envelope", '"event":7', poison("bad_event")),
            ("envelope", f'"data":"{CANARY}"', poison("no_call")),
            ("call", f'"id":["{CANARY}"]', poison("no_call_id")),
        )
        first = draw(st.booleans())
        raw = splice(draft.envelope, where, member, first=first)
        verdict = verdict if first else last_verdict
        change = f"duplicate keys ({'first' if first else 'last'} wins)"
    elif kind == "depth":
        # Nested this deep in the call; the interpreter refuses ~1000 levels (its recursion
        # limit), so between 200 and 5000 is never drawn.
        depth = choice(draw, 1, 64, 65, 200, 5000, 100_000)
        raw = splice(draft.envelope, "call", '"deep":' + "[" * depth + "]" * depth)
        verdict = verdict if depth <= 200 else poison("bad_json")
        change = f"depth {depth}"
    elif kind == "digits":  # the interpreter's limit on an integer's digits
        digits = choice(draw, 20, digits_limit, digits_limit + 1, 10_000)
        raw = splice(draft.envelope, choice(draw, "envelope", "call"), f'"n":-{"9" * digits}')
        verdict = verdict if digits <= digits_limit else poison("bad_json")
        change = f"{'over' if digits > digits_limit else 'within'} the digit limit"
    else:  # an escaped lone surrogate is JSON (ingest refuses it; the decoder need not)
        draft.call["transcript"] = f"{CANARY} \ud800"
        raw = encode(draft.envelope, ascii_only=True)
    draft.raw = raw
    return draft.push(verdict, "message bytes", change)


OTHER_EVENTS = (
    "call.started",
    "CALL.ENDED",
    "call.ended ",
    " call.ended",
    "",
    "call.ended\x00",
    "call.\u0435nded",  # a Cyrillic e
    "\ud800",
    "call.summarized.v2",
    "é" * 150,  # the line shows its first 100 characters
)


def envelope_change(draw: st.DrawFn, draft: Draft) -> Push:
    kind = choice(draw, "no event", "event not a string", "other event", "call", "deliveryId")
    envelope, verdict, change = draft.envelope, draft.verdict(), kind
    if kind == "no event":
        # Without one the decoder takes the ``event`` attribute (ingest writes "" for an
        # envelope without event, so docs/archive.md's "ignored, with event ''" follows).
        if draw(st.booleans()):
            del envelope["event"]
        else:
            envelope["event"] = None
        attribute = choice(draw, _ABSENT, "", "call.ended", "call.started", 5)
        draft.attributes.pop("event", None)
        if attribute is not _ABSENT:
            draft.attributes["event"] = attribute
        event = attribute if isinstance(attribute, str) else ""
        verdict = draft.verdict() if event == "call.ended" else ignored(event)
        change = f"no event, event attribute {attribute if attribute is not _ABSENT else 'absent'}"
    elif kind == "event not a string":
        envelope["event"] = choice(draw, 7, 1.5, True, False, [CANARY], {"event": CANARY}, [])
        verdict = poison("bad_event")
    elif kind == "other event":
        event = choice(draw, *OTHER_EVENTS)
        envelope["event"] = event
        if draw(st.booleans()):  # another event type is not judged by the call's rules
            envelope["data"] = choice(draw, None, [CANARY], CANARY, {"id": [CANARY]})
        verdict = ignored(event)
    elif kind == "call":
        envelope["data"] = choice(draw, _ABSENT, None, [draft.call], CANARY, 5, True)
        if envelope["data"] is _ABSENT:
            del envelope["data"]
        verdict = poison("no_call")
    else:  # logged when it is a non-empty string, by design
        envelope["deliveryId"] = choice(draw, _ABSENT, None, "", 5, [CANARY], {"d": CANARY})
        if envelope["deliveryId"] is _ABSENT:
            del envelope["deliveryId"]
    return draft.push(verdict, "envelope", change)


ID_LENGTHS = (  # (unit, count): around the 900-byte limit, once percent-encoded
    ("x", 900),
    ("x", 901),
    ("é", 150),
    ("é", 151),
    ("_", 898),  # a reserved Firestore id: the key gets "%5F" for its first underscore
    ("_", 899),
    ("/", 300),
    ("/", 301),
    ("😀", 75),
    ("😀", 76),
    ("\ud800", 100),
    ("\ud800", 101),
    (CANARY + "/", 80),
)
ODD_IDS = (".", "..", "...", "__x__", "__", "a/b", "%2F", "v3:é", "\x00", "\ud800", " x ", "\u202e")
NO_IDS = (_ABSENT, None, 5, True, [CANARY], {CANARY: 1}, "", " ", "\t\n", "\u3000", "\u2028")


def call_id_change(draw: st.DrawFn, draft: Draft) -> Push:
    kind = choice(draw, "no id", "length", "odd")
    source = logged_source(draft.attributes)
    if kind == "no id":
        call_id = choice(draw, *NO_IDS)
        change = "no id"
    elif kind == "length":
        unit, count = choice(draw, *ID_LENGTHS)
        call_id = unit * count
        change = f"{key_bytes(call_id)} bytes encoded"
    else:
        call_id = choice(draw, *ODD_IDS)
        change = "odd but valid"
    if call_id is _ABSENT:
        del draft.call["id"]
        return draft.push(poison("no_call_id"), "call id", change)
    draft.call["id"] = call_id
    return draft.push(id_verdict(call_id, source), "call id", change)


def timestamp_change(draw: st.DrawFn, draft: Draft) -> Push:
    # endedAt, startedAt, the envelope's timestamp, the publish time: each good, bad or absent;
    # the call is dated by the first good one, and poison when none is (docs/archive.md).
    slots = [choice(draw, "good", "bad", "absent") for _ in range(4)]
    if "bad" not in slots and "absent" not in slots:
        slots[draw(st.integers(0, 3))] = "bad"
    places: list[tuple[dict[str, Any], str]] = [
        (draft.call, "endedAt"),
        (draft.call, "startedAt"),
        (draft.envelope, "timestamp"),
        (draft.message, "publishTime"),
    ]
    for (holder, name), slot in zip(places, slots, strict=True):
        holder.pop(name, None)
        if slot != "absent":
            holder[name] = choice(draw, *GOOD_TIMES) if slot == "good" else choice(draw, *BAD_TIMES)
    if slots[3] == "absent" and draw(st.booleans()):  # the snake-case name Pub/Sub also uses
        draft.message["publish_time"] = choice(draw, *GOOD_TIMES)
        slots[3] = "good (publish_time)"
    dated = any(slot.startswith("good") for slot in slots)
    verdict = (
        draft.verdict() if dated else Verdict(POISON, "no_timestamp", call_id=draft.call["id"])
    )
    return draft.push(verdict, "timestamps", "dated" if dated else "undated")


def attribute_change(draw: st.DrawFn, draft: Draft) -> Push:
    kind = choice(draw, "not a mapping", "not strings", "source")
    if kind == "not a mapping":
        draft.attributes = choice(draw, _ABSENT, None, [CANARY], CANARY, 5)
    elif kind == "not strings":
        draft.attributes.update({"source": choice(draw, [CANARY], 5, None), "x": {"y": CANARY}})
    else:
        source = choice(
            draw,
            CANARY,
            "WEBHOOK",
            "webhook\n",
            " replay",
            "",
            "other",
            "+16475551234",
            "x" * 2000,
            *SOURCES,
        )
        draft.attributes["source"] = source
    return draft.push(draft.verdict(), "attributes", kind)


def message_id_change(draw: st.DrawFn, draft: Draft) -> Push:
    value = choice(draw, _ABSENT, None, "", 0, 5, [CANARY], {"m": CANARY}, "m" * 2000)
    draft.message.pop("messageId")
    if value is not _ABSENT:
        draft.message["messageId"] = value
    if draw(st.booleans()):  # the snake-case name, used when messageId is falsy
        draft.message["message_id"] = choice(draw, "1234", [CANARY])
    if draw(st.booleans()):
        draft.body.pop("subscription")
    return draft.push(draft.verdict(), "message id", "message id")


LAYERS: dict[str, Callable[[st.DrawFn, Draft], Push]] = {
    "cloud event": cloud_event_change,
    "message data": base64_change,
    "message bytes": bytes_change,
    "envelope": envelope_change,
    "call id": call_id_change,
    "timestamps": timestamp_change,
    "attributes": attribute_change,
    "message id": message_id_change,
}


@st.composite
def hostile_pushes(draw: st.DrawFn) -> Push:
    """A valid push with one hostile change at one layer, and its verdict."""
    layer = choice(draw, *LAYERS)  # first: what is drawn first varies most
    return LAYERS[layer](draw, draw(drafts()))


@st.composite
def pushes(draw: st.DrawFn) -> Push:
    """A valid push (one time in ten) or a hostile one."""
    layer = choice(draw, "valid", *LAYERS)
    draft = draw(drafts())
    if layer == "valid":
        return draft.push(draft.verdict(), "valid", "none")
    return LAYERS[layer](draw, draft)


# --- no push at all ---------------------------------------------------------------------------

text_with_canary = st.text(max_size=8).map(lambda text: text + CANARY)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text_with_canary,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(text_with_canary, inner, max_size=3)
    ),
    max_leaves=8,
)
ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, Exception)


class Raising:
    """An object that raises ``error`` when read: by key, for its ``data``, or both."""

    def __init__(self, error: type[Exception], *, key: bool, data: bool) -> None:
        self.error, self.raise_on_key, self.raise_on_data = error, key, data

    def __getitem__(self, name: str) -> Any:
        if self.raise_on_key:
            raise self.error(CANARY)
        return PUBSUB_EVENT_TYPE if name == "type" else CANARY

    @property
    def data(self) -> Any:
        if self.raise_on_data:
            raise self.error(CANARY)
        return {"message": {"data": "!not base64", "messageId": "1"}}


class Incomparable:
    """A CloudEvent type that raises when compared."""

    def __eq__(self, other: object) -> bool:
        raise ValueError(CANARY)

    def __ne__(self, other: object) -> bool:
        raise ValueError(CANARY)

    __hash__ = object.__hash__


class IncomparableEvent:
    """A CloudEvent-like object whose type is an ``Incomparable``."""

    data = None

    def __getitem__(self, name: str) -> Any:
        return Incomparable()


def not_base64_message(message: Any) -> Any:
    """``message`` with a data field that cannot be base64 (it starts with ``!``)."""
    if isinstance(message, dict) and isinstance(message.get("data"), str):
        return {**message, "data": "!" + message["data"]}
    return message


@st.composite
def not_pushes(draw: st.DrawFn) -> tuple[str, Any]:
    """Something that is no push (a kind for the histogram, the thing): never a call event,
    never an ignored one."""
    kind = choice(
        draw,
        "JSON value",
        "bytes",
        "CloudEvent of another type",
        "Pub/Sub CloudEvent, any data",
        "Pub/Sub CloudEvent, any message",
        "raises when read",
        "dict shaped like one",
        "incomparable type",
    )
    if kind == "JSON value":
        return kind, draw(json_values)
    if kind == "bytes":
        return kind, draw(st.binary(max_size=20)) + CANARY.encode()
    if kind == "CloudEvent of another type":
        push = draw(valid_pushes())
        event_type = draw(st.sampled_from(OTHER_TYPES) | text_with_canary)
        return kind, CloudEvent({"type": event_type, "source": CE_SOURCE}, push.data)
    if kind == "Pub/Sub CloudEvent, any data":
        data = draw(json_values.filter(lambda v: not (isinstance(v, dict) and "message" in v)))
        return kind, CloudEvent({"type": PUBSUB_EVENT_TYPE, "source": CE_SOURCE}, data)
    if kind == "Pub/Sub CloudEvent, any message":
        message = not_base64_message(draw(json_values | st.fixed_dictionaries({"data": st.text()})))
        data = {"message": message, "subscription": SUBSCRIPTION}
        return kind, CloudEvent({"type": PUBSUB_EVENT_TYPE, "source": CE_SOURCE}, data)
    if kind == "raises when read":
        key, data = choice(draw, (True, False), (False, True), (True, True))
        return kind, Raising(choice(draw, *ERRORS), key=key, data=data)
    if kind == "dict shaped like one":
        push = draw(valid_pushes())
        return kind, {"type": PUBSUB_EVENT_TYPE, "source": CE_SOURCE, "data": push.data}
    return kind, IncomparableEvent()
