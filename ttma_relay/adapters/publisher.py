"""Publishes call events to the Pub/Sub topic (the message contract: ``contract.messages``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.api_core import retry as api_retry
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher import PublisherClient as GeneratedPublisherClient
from google.pubsub_v1.types import PubsubMessage

PUBLISH_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PublishedEvent:
    message_id: str


class CallEventPublisher:
    """Publishes call events and waits for the message id, bounded in time.

    Each publish is one ``Publish`` RPC, sent from the calling thread: the generated client's
    method, beneath ``pubsub_v1.PublisherClient.publish``. That one batches: every call starts
    the batch's commit thread and a timer thread (about 1 ms per publish, measured in
    BENCHMARKS.md), to merge messages that a webhook, which publishes one event and waits for
    it before answering, never has. Retry and timeout are the same either way: the batcher
    hands them to this very RPC.
    """

    def __init__(
        self,
        client: pubsub_v1.PublisherClient,
        topic_path: str,
        *,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        # pubsub_v1.PublisherClient subclasses the generated client and overrides publish()
        # with the batcher: the generated class's own method is the RPC itself.
        self._rpc_publish = GeneratedPublisherClient.publish.__get__(client)
        self._topic_path = topic_path
        self._timeout = timeout
        self._retry = api_retry.Retry(initial=0.05, maximum=1.0, timeout=timeout)

    @property
    def topic_path(self) -> str:
        return self._topic_path

    def warm(self, timeout: float) -> None:
        """Connect the gRPC channel, then send a Publish of no message, which Pub/Sub refuses
        (``InvalidArgument``, "message_count is too small") and which delivers nothing: the
        first webhook then finds the channel and the RPC's path warm. ``NotFound`` (no topic)
        or ``PermissionDenied`` (no role) is raised: the warm-up logs it as a failure."""
        import grpc
        from google.api_core import exceptions as gexc

        grpc.channel_ready_future(self._client.transport.grpc_channel).result(timeout=timeout)
        try:
            self._rpc_publish(topic=self._topic_path, messages=[], retry=None, timeout=timeout)
        except gexc.InvalidArgument:
            return
        raise AssertionError("Pub/Sub accepted a Publish of no message")

    @staticmethod
    def new_client() -> pubsub_v1.PublisherClient:
        """A client for ``CallEventPublisher`` (its batcher is never used)."""
        return pubsub_v1.PublisherClient()

    def publish(
        self, data: bytes, attributes: Mapping[str, str], *, timeout: float | None = None
    ) -> PublishedEvent:
        """Publish and return once Pub/Sub has stored the message; raises on failure/timeout.

        ``timeout`` (at most the publisher's own) bounds the whole call, retries included."""
        limit = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        retry = self._retry if limit == self._timeout else self._retry.with_timeout(limit)
        response = self._rpc_publish(
            topic=self._topic_path,
            messages=[PubsubMessage(data=data, attributes=dict(attributes))],
            retry=retry,
            timeout=limit,
        )
        return PublishedEvent(message_id=str(response.message_ids[0]))
