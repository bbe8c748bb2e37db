"""A request that is no Pub/Sub push is acked as poison ``not_a_push``, never echoed or 5xx'd.

functions-framework turns a push into the CloudEvent an archiver's entry point receives; what
it cannot turn into one never reaches the function, and it used to answer 400 with the
request's headers and body quoted back, or 500 with a traceback (for a push subscription,
a nack: redelivered until dead-lettered). ``handlers.subscriber.answer_not_a_push``, which
``wiring.prepare`` registers for the two archivers, acks it instead.

Through the real functions-framework app, on the unit fakes: no emulator (their hosts point at a
closed port), and nothing of a request that is no push may touch a fake.
"""

from __future__ import annotations

import json

import flask
import functions_framework
import pytest

from handlers import wiring
from handlers.subscriber import RetryLater
from tests.support.archive import binary_headers, push_for
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PHONE_HASH_KEY, delivery

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens on loopback
CANARY = "QZXnotapushcanary"
ARCHIVERS = ("archive_transcript", "archive_recording")
PUSH = push_for(delivery())
NOT_A_PUSH: dict[str, tuple[bytes, dict[str, str]]] = {  # name → (body, headers)
    "not JSON": (f"{CANARY} {{".encode(), {"Content-Type": "application/json"}),
    "text/plain": (json.dumps(PUSH).encode(), {"Content-Type": "text/plain", "X-C": CANARY}),
    "no content type": (json.dumps(PUSH).encode(), {"X-C": CANARY}),
    "JSON, no message": (json.dumps({"k": CANARY}).encode(), {"Content-Type": "application/json"}),
    "a JSON list": (json.dumps([CANARY]).encode(), {"Content-Type": "application/json"}),
    "a JSON string": (json.dumps(CANARY).encode(), {"Content-Type": "application/json"}),
    "message without data": (
        json.dumps(
            {"message": {"messageId": "1", "attributes": {"a": CANARY}}, "subscription": "s"}
        ).encode(),
        {"Content-Type": "application/json"},
    ),
    "no subscription": (
        json.dumps({"message": PUSH["message"], "k": CANARY}).encode(),
        {"Content-Type": "application/json"},
    ),
    "a background event's context": (
        json.dumps({**PUSH, "context": {"eventId": CANARY}}).encode(),
        {"Content-Type": "application/json"},
    ),
    "structured, no id": (
        json.dumps({"specversion": "1.0", "type": "t", "source": CANARY, "data": {}}).encode(),
        {"Content-Type": "application/cloudevents+json"},
    ),
    "binary, unknown specversion, no push": (
        json.dumps({"k": CANARY}).encode(),
        {**binary_headers("1"), "ce-specversion": CANARY},
    ),
    "too deep for json": (
        b'{"k":"%s","d":%s%s}' % (CANARY.encode(), b"[" * 50_000, b"]" * 50_000),
        {"Content-Type": "application/json"},
    ),
    "5000 digits": (
        b'{"k":"%s","n":%s}' % (CANARY.encode(), b"9" * 5000),
        {"Content-Type": "application/json"},
    ),
    "not UTF-8": (b'{"k":"%s\xff"}' % CANARY.encode(), {"Content-Type": "application/json"}),
    "an unhashable specversion": (
        json.dumps({**PUSH, "specversion": [CANARY]}).encode(),
        {"Content-Type": "application/json"},
    ),
}


@pytest.fixture
def journal_free_deps(archive_deps, journal, monkeypatch):
    """``wiring.archive_deps`` as the fakes; what touched them is in ``journal``."""
    monkeypatch.setattr(wiring, "archive_deps", lambda: archive_deps)
    return journal


@pytest.fixture(params=ARCHIVERS)
def served(request, monkeypatch, journal_free_deps):
    env = {
        "GOOGLE_CLOUD_PROJECT": "ttma-relay-test",
        "ARCHIVE_BUCKET": "unit-bucket",
        "TTMA_API_KEY": "k" * 20,
        "TTMA_PHONE_HASH_KEY": PHONE_HASH_KEY,
        "FIRESTORE_EMULATOR_HOST": CLOSED,
        "STORAGE_EMULATOR_HOST": f"http://{CLOSED}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = functions_framework.create_app(
        target=request.param, source=str(REPO_ROOT / "main.py"), signature_type="cloudevent"
    )
    return request.param, app.test_client()


@pytest.mark.parametrize("name", sorted(NOT_A_PUSH))
def test_a_request_that_is_no_push_is_acked_as_poison_without_a_word_of_it(
    served, name, log_lines, journal_free_deps, capsys, caplog
):
    function, client = served
    body, headers = NOT_A_PUSH[name]
    response = client.post("/", data=body, headers=headers)

    assert (response.status_code, response.data) == (200, b"OK")
    assert CANARY.encode() not in response.data + str(response.headers).encode()
    [line] = log_lines()
    assert (line["function"], line["severity"], line["outcome"], line["reason"]) == (
        function,
        "WARNING",
        "poison",
        "not_a_push",
    )
    assert line["message"] == f"{function} poison" and line["errorType"]
    assert CANARY not in json.dumps(line)
    assert journal_free_deps == []  # nothing reached the archive, the index or the API
    printed = capsys.readouterr()
    elsewhere = printed.err + printed.out + caplog.text  # Flask's own logger goes to either
    assert "Traceback" not in elsewhere and CANARY not in elsewhere


def test_a_push_still_reaches_the_function(served, log_lines, journal_free_deps):
    function, client = served
    envelope = delivery()
    envelope["event"] = "call.started"  # ignored: acked by the function itself
    assert client.post("/", json=push_for(envelope)).status_code == 200
    [line] = log_lines()
    assert (line["function"], line["outcome"]) == (function, "ignored")


def test_a_binary_mode_event_with_a_push_body_still_reaches_the_function(served, log_lines):
    _, client = served
    body = push_for({**delivery(), "event": "call.started"})
    headers = binary_headers(body["message"]["messageId"])
    assert client.post("/", data=json.dumps(body), headers=headers).status_code == 200
    assert [line["outcome"] for line in log_lines()] == ["ignored"]


def test_what_the_function_raises_is_answered_as_before(
    served, monkeypatch, log_lines, capsys, caplog
):
    """A retry stays a 503 and a bug a 500 with its traceback: only requests that never
    reached the function are acked."""
    function, client = served
    handler = __import__(f"handlers.{function}", fromlist=["handle"])

    def retry(cloud_event, deps):
        raise RetryLater("api_error", "the API failed")

    monkeypatch.setattr(handler, "handle", retry)
    assert client.post("/", json=PUSH).status_code == 503

    def bug(cloud_event, deps):
        raise RuntimeError("a bug")

    monkeypatch.setattr(handler, "handle", bug)
    assert client.post("/", json=PUSH).status_code == 500
    logged = capsys.readouterr().err + caplog.text  # Flask logs it, with its traceback
    assert "Traceback" in logged and "RuntimeError: a bug" in logged
    assert log_lines() == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_a_method_other_than_post_is_still_refused_405(served, method, log_lines):
    _, client = served
    response = client.open("/", method=method, data=json.dumps({"k": CANARY}))
    assert response.status_code == 405
    assert CANARY.encode() not in response.data
    assert log_lines() == []


@pytest.mark.parametrize(
    "target", ["ingest", "archive_transcript", "archive_recording", "reconcile"]
)
def test_only_the_push_subscribers_answer_not_a_push(target):
    app = flask.Flask(target)
    wiring.answer_not_a_push_in(target)  # outside an app: nothing to register on, no error
    with app.app_context():
        wiring.answer_not_a_push_in(target)
    registered = app.error_handler_spec[None][None]
    assert (Exception in registered) == (target in ARCHIVERS)
