"""``log_event`` refuses the fields that could carry personal data or credentials."""

from __future__ import annotations

import io
import json

import pytest

from ttma_relay import logs


@pytest.mark.parametrize("name", sorted(logs.FORBIDDEN_KEYS))
def test_a_sensitive_field_is_refused_and_nothing_is_written(name):
    stream = io.StringIO()
    logs.set_stream(stream)
    try:
        with pytest.raises(ValueError, match="refusing to log sensitive field") as refused:
            logs.log_event("INFO", "m", callId="v3:a", **{name: "+16475550123 secret-value"})
    finally:
        logs.set_stream(None)
    assert stream.getvalue() == ""
    assert "secret-value" not in str(refused.value) and "+1647" not in str(refused.value)


def test_the_fields_that_name_people_and_secrets_are_all_forbidden():
    assert {"transcript", "facts", "task", "callerNumber", "calledNumber", "phone",
            "partyNumberHashes", "secret", "signature", "signedUrl", "url", "apiKey",
            "phoneHashKey", "body", "payload"} <= logs.FORBIDDEN_KEYS  # fmt: skip


def test_an_allowed_line_is_one_json_object():
    stream = io.StringIO()
    logs.set_stream(stream)
    try:
        logs.log_event("WARNING", "ingest accepted", callId="v3:a", outcome="accepted", empty=None)
    finally:
        logs.set_stream(None)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["severity"], record["callId"]) == ("WARNING", "v3:a")
    assert record["outcome"] == "accepted"
    assert "empty" not in record and record["time"].endswith("Z")
