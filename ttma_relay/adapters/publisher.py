"""Publishes call events to the Pub/Sub topic (the message contract: ``contract.messages``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.api_core import retry as api_retry
from google.cloud import pubsub_v1

PUBLISH_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PublishedEvent:
    message_id: str


class CallEventPublisher:
    """Publishes call events and waits for the message id, bounded in time.

    Batching is set for latency (one message per batch): each webhook publishes one event and
    waits for it before answering, so a batch timer would only add its delay to every request.
    """

    def __init__(
        self,
        client: pubsub_v1.PublisherClient,
        topic_path: str,
        *,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        self._topic_path = topic_path
        self._timeout = timeout
        self._retry = api_retry.Retry(initial=0.05, maximum=1.0, timeout=timeout)

    @property
    def topic_path(self) -> str:
        return self._topic_path

    def warm(self, timeout: float) -> None:
        """Connect the gRPC channel now, without an RPC (a publish would deliver a message):
        the first webhook then does not pay for connecting."""
        import grpc

        grpc.channel_ready_future(self._client.api.transport.grpc_channel).result(timeout=timeout)

    @staticmethod
    def low_latency_client() -> pubsub_v1.PublisherClient:
        return pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001),
        )

    def publish(
        self, data: bytes, attributes: Mapping[str, str], *, timeout: float | None = None
    ) -> PublishedEvent:
        """Publish and return once Pub/Sub has stored the message; raises on failure/timeout.

        ``timeout`` (at most the publisher's own) bounds the whole call, retries included."""
        limit = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        retry = self._retry if limit == self._timeout else self._retry.with_timeout(limit)
        future = self._client.publish(
            self._topic_path, data, retry=retry, timeout=limit, **attributes
        )
        message_id = future.result(timeout=limit)
        return PublishedEvent(message_id=str(message_id))
