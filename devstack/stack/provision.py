"""Create what Terraform creates in a project, on the emulators; point the sandbox's webhook.

- Pub/Sub: the call-events topic, its dead-letter topic, one push subscription per subscriber
  function (push endpoint = the local function, dead-letter policy; no retry back-off by
  default, see ``StackConfig``) and the dead-letter ``-hold`` pull subscription. The emulator
  accepts but does not apply filters, and its pushes carry no OIDC token (none is needed here).
- Pub/Sub, per downstream consumer (``--consumer NAME=URL``): the push subscription Terraform's
  ``consumers`` creates (``devstack.consumers``: unwrapped body, attributes as headers), with the
  same local retry choice as the function subscriptions.
- Cloud Storage: the archive bucket.
- The sandbox: the webhook of each agent number → the local ingest, with the dev secret, set
  through the project's own API client (``allow_insecure_local`` lifts its https rule).

Callers set the ``*_EMULATOR_HOST`` variables first: the Google clients read them.
"""

from __future__ import annotations

from typing import Any

from devstack.stack.config import ACK_DEADLINE_SECONDS, StackConfig

MESSAGE_RETENTION_SECONDS = 7 * 24 * 3600


def create_pubsub_resources(config: StackConfig) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        topic = publisher.topic_path(config.project, config.topic)
        dead_letter = publisher.topic_path(config.project, config.dead_letter_topic)
        publisher.create_topic(name=topic)
        publisher.create_topic(name=dead_letter)
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(
                    config.project, config.dead_letter_subscription
                ),
                "topic": dead_letter,
                "ack_deadline_seconds": 60,
                "retain_acked_messages": True,
            }
        )
        for function in config.subscribers:
            subscriber.create_subscription(request=push_subscription(config, function))
        for request in consumer_subscriptions(config):
            subscriber.create_subscription(request=request)
    finally:
        subscriber.close()
        publisher.stop()


def push_subscription(config: StackConfig, function: str) -> dict[str, Any]:
    """The ``CreateSubscription`` request of ``function``'s push subscription."""
    request: dict[str, Any] = {
        "name": f"projects/{config.project}/subscriptions/{config.push_subscription(function)}",
        "topic": f"projects/{config.project}/topics/{config.topic}",
        "ack_deadline_seconds": ACK_DEADLINE_SECONDS[function],
        "message_retention_duration": {"seconds": MESSAGE_RETENTION_SECONDS},
        "push_config": {"push_endpoint": config.url(function)},
        "dead_letter_policy": {
            "dead_letter_topic": f"projects/{config.project}/topics/{config.dead_letter_topic}",
            "max_delivery_attempts": config.max_delivery_attempts,
        },
    }
    if config.retry_backoff_seconds is not None:  # see StackConfig: the emulator stalls with one
        minimum, maximum = config.retry_backoff_seconds
        request["retry_policy"] = {
            "minimum_backoff": {"seconds": minimum},
            "maximum_backoff": {"seconds": maximum},
        }
    return request


def consumer_subscriptions(config: StackConfig) -> list[dict[str, Any]]:
    """The ``CreateSubscription`` requests of the stack's downstream consumers."""
    from devstack.consumers import subscription_request

    return [
        subscription_request(
            project=config.project,
            topic=config.topic,
            dead_letter_topic=config.dead_letter_topic,
            consumer=consumer,
            retry_policy=config.retry_backoff_seconds is not None,
            max_delivery_attempts=config.max_delivery_attempts,
        )
        for consumer in config.consumers
    ]


def create_bucket(config: StackConfig) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=config.project, credentials=AnonymousCredentials())
    client.create_bucket(config.bucket)


def configure_sandbox_webhooks(config: StackConfig, api_key: str, secret: str) -> None:
    """Point every agent number's webhook at the local ingest (as an operator would)."""
    from ttma_relay.adapters.ttma_api import TtmaClient

    with TtmaClient(config.url("sandbox"), api_key, timeout=5.0, max_retries=2) as client:
        for number in config.agent_numbers:
            client.configure_webhook(
                number, config.url("ingest"), secret, allow_insecure_local=True
            )
