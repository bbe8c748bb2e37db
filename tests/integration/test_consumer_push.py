"""A downstream consumer, subscribed as Terraform subscribes it, gets the vendor's JSON as JSON.

The subscription is built from ``terraform/pubsub.tf``'s ``consumer_push`` as Terraform itself
evaluates it (``devstack.consumers.terraform``), not from settings typed again here. It pushes to
a real HTTP server on 127.0.0.1 (``devstack.consumers.receiver``). What is asserted is what a
consumer such as n8n depends on: ``Content-Type: application/json``, the body byte-equal to the
message data, every attribute as a header.

Stand-in: the Pub/Sub emulator performs the push. Google documents for ``write_metadata`` that
attributes become ``<KEY>: <VAL>`` headers and metadata ``x-goog-pubsub-<KEY>`` headers
(PushConfig.NoWrapper); the emulator sends no OIDC token and applies no filter.
"""

from __future__ import annotations

import json
import os

import pytest

from devstack.consumers import (
    Consumer,
    ConsumerError,
    load_settings,
    parse_consumers,
    subscription_name,
    subscription_request,
)
from devstack.consumers import terraform as consumer_terraform
from devstack.consumers.receiver import ConsumerReceiver, Received
from devstack.stack.config import TOPIC, StackConfig
from devstack.terraform_eval import TerraformEvalError
from tests.support.paths import TEST_DATA
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.contract.messages import ATTRIBUTE_NAMES, message_attributes, reconcile_envelope

pytestmark = pytest.mark.emulator
DATA = TEST_DATA / "call_ended.json"
PUSH_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def terraform_settings() -> dict:
    """consumer_push as ``terraform console`` evaluates it now."""
    try:
        return consumer_terraform.derive()
    except TerraformEvalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"terraform console unavailable (required under CI=true): {error}")
        pytest.skip(f"terraform console unavailable: {error}")


def test_committed_settings_are_what_terraform_evaluates(terraform_settings):
    assert load_settings() == terraform_settings, (
        "devstack/consumers/subscription.json is stale: python -m devstack.consumers.terraform "
        "--write"
    )


def test_local_placement_follows_terraform_names(terraform_settings):
    sample, resource = terraform_settings["sample"], terraform_settings["subscription"]
    project = sample["project"]
    assert resource["name"] == subscription_name(TOPIC, sample["consumer"])
    assert resource["topic"] == f"projects/{project}/topics/{TOPIC}"
    config = StackConfig(ports={})
    assert resource["dead_letter_policy"]["dead_letter_topic"] == (
        f"projects/{project}/topics/{config.dead_letter_topic}"
    )
    assert resource["push_config"]["push_endpoint"] == sample["push_endpoint"]


def test_every_terraform_argument_is_translated(terraform_settings):
    request = subscription_request(
        project="p", topic="t", dead_letter_topic="d", consumer=Consumer("c", "http://x/"),
        settings=terraform_settings,
    )  # fmt: skip
    assert request["push_config"]["no_wrapper"] == {"write_metadata": True}
    assert request["push_config"]["oidc_token"]["audience"] == "http://x/"
    extended = json.loads(json.dumps(terraform_settings))
    extended["subscription"]["enable_message_ordering"] = True
    with pytest.raises(KeyError, match="enable_message_ordering"):
        subscription_request(
            project="p", topic="t", dead_letter_topic="d", consumer=Consumer("c", "http://x/"),
            settings=extended,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("n8n", "NAME=URL"),
        ("N8N=http://127.0.0.1:5678/x", "lowercase"),
        ("9lives=http://127.0.0.1:5678/x", "starting with a letter"),
        ("n8n=ftp://127.0.0.1/x", "http(s) URL"),
        ("n8n=http://127.0.0.1:1/a n8n=http://127.0.0.1:2/b", "given twice"),
    ],
)
def test_bad_consumer_specs_say_what_is_wrong(spec, problem):
    with pytest.raises(ConsumerError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_consumers([spec])


def test_several_consumers_in_one_spec():
    consumers = parse_consumers(["a=http://127.0.0.1:1/x, b=https://b.example/y", "c=http://h/"])
    assert [c.name for c in consumers] == ["a", "b", "c"]


def _envelopes() -> list[bytes]:
    webhook = DATA.read_bytes()
    call = json.loads(webhook)["data"]
    old_style = dict(call, id="v3:old-style", endedReason=None, transcript=None,
                     hasTranscript=False, recordingAvailable=False)  # fmt: skip
    unicode_call = dict(call, id="v3:zoë", transcript="[Agent] Grüße, Zoë Ångström. ☎")
    return [
        webhook,  # the vendor's exact bytes
        reconcile_envelope(old_style),
        reconcile_envelope(unicode_call),
    ]


def _assert_delivered_as_json(received: Received, data: bytes, attributes: dict[str, str]):
    assert received.method == "POST"
    assert received.header("Content-Type") == "application/json"
    assert received.body == data  # byte for byte: the vendor's JSON, unchanged
    for name, value in attributes.items():
        assert received.header_text(name) == value, f"header {name}"
    json.loads(received.body)


@pytest.fixture
def consumer_topic(publisher_client, emulators, unique):
    project = emulators["GOOGLE_CLOUD_PROJECT"]
    topic, dead_letter = f"events-{unique}", f"events-{unique}-dead-letter"
    for name in (topic, dead_letter):
        publisher_client.create_topic(name=publisher_client.topic_path(project, name))
    return project, topic, dead_letter


def test_terraform_shaped_push_delivers_json_body_and_attribute_headers(
    terraform_settings, consumer_topic, publisher_client, subscriber_client
):
    project, topic, dead_letter = consumer_topic
    with ConsumerReceiver() as receiver:
        request = subscription_request(
            project=project, topic=topic, dead_letter_topic=dead_letter,
            consumer=Consumer("receiver", receiver.url("/webhook/ttma")),
            settings=terraform_settings,
        )  # fmt: skip
        subscriber_client.create_subscription(request=request)
        created = subscriber_client.get_subscription(subscription=request["name"])
        assert created.push_config.no_wrapper.write_metadata is True
        assert (
            created.ack_deadline_seconds
            == terraform_settings["subscription"]["ack_deadline_seconds"]
        )
        publisher = CallEventPublisher(
            CallEventPublisher.new_client(), publisher_client.topic_path(project, topic)
        )
        sent = {}
        for data in _envelopes():
            envelope = json.loads(data)
            source = "webhook" if data == DATA.read_bytes() else "reconcile"
            attributes = message_attributes(envelope, source)
            publisher.publish(data, attributes)
            sent[envelope["data"]["id"]] = (data, attributes)
        received = receiver.wait_for(len(sent), PUSH_TIMEOUT)
    assert {r.path for r in received} == {"/webhook/ttma"}
    by_call = {r.header_text("callId"): r for r in received}
    assert set(by_call) == set(sent)
    for call_id, (data, attributes) in sent.items():
        assert set(attributes) == set(ATTRIBUTE_NAMES)
        _assert_delivered_as_json(by_call[call_id], data, attributes)
    old = by_call["v3:old-style"]
    assert old.header("endedReason") == "" and old.json()["data"]["endedReason"] is None
    # Header values are the attribute's UTF-8 bytes; read as Latin-1 (Node.js, so n8n, does)
    # a non-ASCII id is garbled there: consumers take ids from the body (docs/consumers.md).
    assert by_call["v3:zoë"].header("callId") == "v3:zoë".encode().decode("latin-1")


def test_without_the_attribute_the_emulator_pushes_form_urlencoded(
    terraform_settings, consumer_topic, publisher_client, subscriber_client
):
    """Why the attribute exists: the issue's n8n read null for every field without it."""
    project, topic, dead_letter = consumer_topic
    with ConsumerReceiver() as receiver:
        request = subscription_request(
            project=project, topic=topic, dead_letter_topic=dead_letter,
            consumer=Consumer("bare", receiver.url()), settings=terraform_settings,
        )  # fmt: skip
        subscriber_client.create_subscription(request=request)
        attributes = message_attributes(json.loads(DATA.read_bytes()), "webhook")
        del attributes["Content-Type"]
        publisher_client.publish(
            publisher_client.topic_path(project, topic), DATA.read_bytes(), **attributes
        ).result(timeout=10)
        [received] = receiver.wait_for(1, PUSH_TIMEOUT)
    assert received.body == DATA.read_bytes()
    assert (received.header("Content-Type") or "") != "application/json"


def test_local_stack_consumers_are_subscribed_like_terraform(
    consumer_topic, publisher_client, subscriber_client, tmp_path
):
    """``make dev CONSUMERS=...``: the stack's provisioning creates the same subscription."""
    from devstack.stack.provision import consumer_subscriptions

    project, topic, _ = consumer_topic
    with ConsumerReceiver() as first, ConsumerReceiver() as second:
        config = StackConfig(
            ports={}, project=project, topic=topic, state_dir=tmp_path,
            consumers=parse_consumers([f"one={first.url()}", f"two={second.url('/b')}"]),
        )  # fmt: skip
        for request in consumer_subscriptions(config):
            subscriber_client.create_subscription(request=request)
        names = {r["name"].rsplit("/", 1)[1] for r in consumer_subscriptions(config)}
        assert names == {f"{topic}-consumer-one", f"{topic}-consumer-two"}
        data = DATA.read_bytes()
        attributes = message_attributes(json.loads(data), "webhook")
        publisher_client.publish(
            publisher_client.topic_path(project, topic), data, **attributes
        ).result(timeout=10)
        for receiver in (first, second):
            [received] = receiver.wait_for(1, PUSH_TIMEOUT)
            _assert_delivered_as_json(received, data, attributes)
    request = consumer_subscriptions(config)[0]
    assert "retry_policy" not in request  # the emulator stalls with one (docs/local-stack.md)
    assert request["dead_letter_policy"]["max_delivery_attempts"] == config.max_delivery_attempts


def test_saved_requests_check_catches_form_bodies_and_missing_calls(tmp_path):
    from devstack.consumers.receiver import check_saved, summary

    data = DATA.read_bytes()
    attributes = message_attributes(json.loads(data), "webhook")
    good = Received("POST", "/", tuple(attributes.items()), data)
    form_headers = {**attributes, "Content-Type": "application/x-www-form-urlencoded"}
    form = Received("POST", "/", tuple(form_headers.items()), data)
    saved = tmp_path / "received.jsonl"
    saved.write_text(json.dumps(summary(good)) + "\n")
    assert check_saved(saved, 1) == []
    assert check_saved(saved, 2) == ["1 distinct calls received in 1 requests, expected 2"]
    saved.write_text(json.dumps(summary(form)) + "\n")
    [problem] = check_saved(saved, 1)
    assert "Content-Type 'application/x-www-form-urlencoded'" in problem
    call = json.loads(data)["data"]
    facts = call["task"]["facts"]
    for personal in (call["transcript"], call["calledNumber"], facts["debtor_name"]):
        assert personal not in saved.read_text()  # the body is never saved


def test_stack_command_line_and_environment_add_consumers(monkeypatch):
    from devstack.stack import build_config, build_parser
    from devstack.stack.config import StackConfigError

    monkeypatch.setenv("TTMA_DEV_CONSUMERS", "env=http://127.0.0.1:5679/")
    args = build_parser().parse_args(
        ["up", "--free-ports", "--consumer", "n8n=http://127.0.0.1:5678/webhook/ttma"]
    )
    config = build_config(args)
    assert config.consumers == (
        Consumer("n8n", "http://127.0.0.1:5678/webhook/ttma"),
        Consumer("env", "http://127.0.0.1:5679/"),
    )
    monkeypatch.setenv("TTMA_DEV_CONSUMERS", "Bad=http://127.0.0.1:1/")
    with pytest.raises(StackConfigError, match="lowercase"):
        build_config(build_parser().parse_args(["up", "--free-ports"]))
