"""Check a call event message against the published schema (docs/schema/v<schemaVersion>/).

``validate_message(data, attributes)`` raises ``AssertionError`` naming each problem by its
place and reason, never by the value (payloads carry PII): the data is not strict UTF-8 JSON,
the data or the attributes do not validate, or an attribute disagrees with the data it is taken
from (the rules of ``ttma_relay.contract.messages.message_attributes``, restated here on purpose so
that a drift between the two is caught). The schemas are loaded once. Test-only: the deployed
functions never load them.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from tests.support.paths import REPO_ROOT
from ttma_relay.contract.messages import SCHEMA_VERSION

SCHEMA_DIR = REPO_ROOT / "docs" / "schema" / f"v{SCHEMA_VERSION}"
DATA_SCHEMA_FILE = SCHEMA_DIR / "call-event.schema.json"
ATTRIBUTES_SCHEMA_FILE = SCHEMA_DIR / "call-event-attributes.schema.json"
MAX_ATTRIBUTE_VALUE_BYTES = 1024  # Pub/Sub's limit per value; longer values are cut
MAX_PROBLEMS = 10
# How many messages were checked, by where they came from (printed at the end of the session).
counts: Counter[str] = Counter()


@functools.cache
def load_schema(path: Path) -> dict[str, Any]:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _registry() -> Registry:
    resources = [
        Resource.from_contents(load_schema(p)) for p in (DATA_SCHEMA_FILE, ATTRIBUTES_SCHEMA_FILE)
    ]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


@functools.cache
def data_validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema(DATA_SCHEMA_FILE), registry=_registry())


@functools.cache
def attributes_validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema(ATTRIBUTES_SCHEMA_FILE), registry=_registry())


@functools.cache
def call_validator() -> Draft202012Validator:
    """The call object alone (``$defs/call``), e.g. the single-call GET response's ``data``."""
    root = load_schema(DATA_SCHEMA_FILE)["$id"]
    return Draft202012Validator({"$ref": f"{root}#/$defs/call"}, registry=_registry())


def validate_message(data: bytes, attributes: Mapping[str, str]) -> None:
    """Raise ``AssertionError`` unless ``data`` and ``attributes`` are a valid call event."""
    envelope = _decode(data)
    problems = [f"data {p}" for p in schema_problems(data_validator(), envelope)]
    if not isinstance(attributes, Mapping):
        problems.append(f"attributes: expected a mapping, got {type(attributes).__name__}")
    else:
        attrs = dict(attributes)
        problems += [f"attributes {p}" for p in schema_problems(attributes_validator(), attrs)]
        if not problems:
            problems += disagreements(envelope, attrs)
    _raise(problems)


def validate_call(call: Any) -> None:
    """Raise ``AssertionError`` unless ``call`` is a valid call object."""
    _raise([f"call {p}" for p in schema_problems(call_validator(), call)])


def _raise(problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise AssertionError(
            f"call event does not match docs/schema/v{SCHEMA_VERSION}: "
            + "; ".join(shown)
            + (f"; and {more} more" if more else "")
        )


def _decode(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray):
        raise AssertionError(f"message data must be bytes, got {type(data).__name__}")
    if data.startswith(b"\xef\xbb\xbf"):
        raise AssertionError("message data is not UTF-8 JSON: it starts with a byte order mark")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise AssertionError(f"message data is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"message data is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:
        raise AssertionError(f"message data is not strict JSON: {error}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def schema_problems(validator: Draft202012Validator, instance: Any) -> list[str]:
    """Each validation error as ``<JSON path>: <reason>``, with no instance value in it."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [f"{error.json_path}: {_reason(error)}" for error in errors]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reason(error: ValidationError) -> str:
    """Why ``error`` failed, from the schema's side (the instance is only named by its type)."""
    kind, expected, instance = error.validator, error.validator_value, error.instance
    if kind == "type":
        return f"expected {_alternatives(expected)}, got {_json_type(instance)}"
    if kind == "required":
        missing = [n for n in expected if isinstance(instance, dict) and n not in instance]
        return f"missing required {', '.join(map(repr, missing))}"
    if kind == "enum":
        listed = list(expected) if len(expected) <= 5 else f"the {len(expected)} listed values"
        return f"expected one of {listed}, got another {_json_type(instance)}"
    if kind == "const":
        return f"expected {expected!r}, got another {_json_type(instance)}"
    if kind == "pattern":
        return f"does not match the pattern {expected!r}"
    if kind in ("anyOf", "oneOf"):
        reasons = dict.fromkeys(
            "".join(f".{part}" for part in sub.relative_path).lstrip(".")
            + (": " if sub.relative_path else "")
            + _reason(sub)
            for sub in error.context or ()
        )
        return f"matches no alternative ({' | '.join(reasons)})"
    return f"fails {kind!r} ({expected!r})"


def _alternatives(expected: str | Iterable[str]) -> str:
    return expected if isinstance(expected, str) else " or ".join(expected)


def _attribute_text(value: Any) -> str:
    """An attribute's value for a JSON value: null → '', booleans → 'true'/'false', strings as
    they are, anything else as JSON; cut to Pub/Sub's 1024 bytes on a character boundary."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value)
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_ATTRIBUTE_VALUE_BYTES:
        text = encoded[:MAX_ATTRIBUTE_VALUE_BYTES].decode("utf-8", errors="ignore")
    return text


def disagreements(envelope: Mapping[str, Any], attributes: Mapping[str, str]) -> list[str]:
    """Attributes that are not what the data says they must be (names only, never values)."""
    call = envelope.get("data") or {}
    expected = {
        "event": _attribute_text(envelope.get("event")),
        "deliveryId": _attribute_text(envelope.get("deliveryId")),
        "callId": _attribute_text(call.get("id")),
        "direction": _attribute_text(call.get("direction")),
        "status": _attribute_text(call.get("status")),
        "endedReason": _attribute_text(call.get("endedReason")),
        "recordingAvailable": "true" if call.get("recordingAvailable") is True else "false",
        "hasTranscript": "true" if call.get("hasTranscript") is True else "false",
        "endedAt": _attribute_text(call.get("endedAt")),
    }
    problems = [
        f"attributes.{name} does not agree with the data ({_source_of(name)})"
        for name, value in expected.items()
        if attributes.get(name) != value
    ]
    if attributes.get("source") == "reconcile" and (
        envelope.get("deliveryId") != f"reconcile:{call.get('id')}"
    ):
        problems.append("source is reconcile but deliveryId is not reconcile:<data.id>")
    return problems


def _source_of(name: str) -> str:
    if name in ("event", "deliveryId"):
        return f"envelope {name}"
    if name == "callId":
        return "data.id"
    if name in ("recordingAvailable", "hasTranscript"):
        return f"'true' only when data.{name} is true"
    return f"data.{name}, '' when null"
