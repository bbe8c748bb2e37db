"""Publishes call events to the Pub/Sub topic (the message contract: ``contract.messages``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.api_core import retry as api_retry
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher import PublisherClient as GeneratedPublisherClient
from google.pubsub_v1.types import PubsubMessage

PUBLISH_TIMEOUT_SECONDS = 10.0
# One Publish request carries at most this much: Pub/Sub's limits are 1,000 messages and 10 MB
# per request (a message alone is at most 10 MB; ingest's bodies are at most MAX_BODY_BYTES).
MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 9_000_000


@dataclass(frozen=True)
class PublishedEvent:
    message_id: str


@dataclass(eq=False)
class _Waiting:
    """One caller's message, queued while a Publish is in flight."""

    message: PubsubMessage
    size: int
    deadline: float  # time.monotonic()
    done: threading.Event | None = None  # made only when the caller queues
    batch: list[_Waiting] | None = None  # set on the one who must send it
    message_id: str | None = None
    error: BaseException | None = None


class CallEventPublisher:
    """Publishes call events and waits for the message id, bounded in time.

    Each publish is a ``Publish`` RPC sent from a caller's thread: the generated client's
    method, beneath ``pubsub_v1.PublisherClient.publish``. That one batches on a timer and
    starts a commit thread and a timer thread for every batch (about 1 ms per webhook, measured
    in BENCHMARKS.md). Retry and timeout are the same either way: the batcher hands them to
    this very RPC.

    Batching without a timer: while ``max_in_flight`` Publish RPCs are in flight, callers
    queue. When an RPC returns, its sender hands the queue (up to ``MAX_BATCH_MESSAGES`` and
    ``MAX_BATCH_BYTES``) to the first caller in it, which sends them all in one RPC. A caller
    alone (sequential webhooks) sends at once; under load, messages share RPCs. A batch's RPC
    is bounded by the earliest deadline among its callers; its failure is each caller's. A
    caller whose time runs out while still queued leaves the queue and gets ``DeadlineExceeded``.
    """

    def __init__(
        self,
        client: pubsub_v1.PublisherClient,
        topic_path: str,
        *,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
        max_in_flight: int = 1,
    ) -> None:
        self._client = client
        # pubsub_v1.PublisherClient subclasses the generated client and overrides publish()
        # with the batcher: the generated class's own method is the RPC itself.
        self._rpc_publish = GeneratedPublisherClient.publish.__get__(client)
        self._topic_path = topic_path
        self._timeout = timeout
        self._retry = api_retry.Retry(initial=0.05, maximum=1.0, timeout=timeout)
        self._max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._in_flight = 0
        self._queue: list[_Waiting] = []

    @property
    def topic_path(self) -> str:
        return self._topic_path

    def warm(self, timeout: float) -> None:
        """Connect the gRPC channel, then send a Publish of no message, which Pub/Sub refuses
        (``InvalidArgument``, "message_count is too small") and which delivers nothing: the
        first webhook then finds the channel and the RPC's path warm. ``NotFound`` (no topic)
        or ``PermissionDenied`` (no role) is raised: the warm-up logs it as a failure."""
        import grpc

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

        ``timeout`` (at most the publisher's own) bounds the whole call, retries and any wait
        in the queue included."""
        limit = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        attributes = dict(attributes)
        me = _Waiting(
            PubsubMessage(data=data, attributes=attributes),
            size=len(data) + sum(len(k) + len(v) for k, v in attributes.items()),
            deadline=time.monotonic() + limit,
        )
        with self._lock:
            if self._in_flight < self._max_in_flight:
                self._in_flight += 1
                me.batch = [me]
            else:
                me.done = threading.Event()
                self._queue.append(me)
        if me.batch is None:
            self._wait_for_turn(me)
        if me.batch is not None:  # this caller sends: its own message, or a handed-over queue
            self._send(me.batch)
        if me.error is not None:
            raise me.error
        return PublishedEvent(message_id=str(me.message_id))

    def _wait_for_turn(self, me: _Waiting) -> None:
        assert me.done is not None  # noqa: S101  narrows a type: queued callers have an event; queued callers have one
        if me.done.wait(max(0.0, me.deadline - time.monotonic())):
            return
        with self._lock:
            if me in self._queue:  # still queued: give up without having sent anything
                self._queue.remove(me)
                me.error = gexc.DeadlineExceeded("publish: time ran out waiting to be sent")
                return
        me.done.wait()  # taken into a batch: its RPC ends by the batch's (earlier) deadline

    def _send(self, batch: list[_Waiting]) -> None:
        limit = max(0.001, min(item.deadline for item in batch) - time.monotonic())
        retry = self._retry if limit >= self._timeout else self._retry.with_timeout(limit)
        try:
            response = self._rpc_publish(
                topic=self._topic_path,
                messages=[item.message for item in batch],
                retry=retry,
                timeout=limit,
            )
            for item, message_id in zip(batch, response.message_ids, strict=True):
                item.message_id = message_id
        except Exception as error:  # every caller of the batch raises it
            for item in batch:
                item.error = error
        finally:
            self._hand_over()
            for item in batch:
                if item.done is not None and item.batch is not batch:  # the others, queued
                    item.done.set()

    def _hand_over(self) -> None:
        """The queue, or as much of it as one request carries, to its first caller. Callers
        whose time has already run out are answered ``DeadlineExceeded`` instead of sent: a
        batch's RPC is bounded by its earliest deadline, which must not cut the others short."""
        now = time.monotonic()
        with self._lock:
            expired = [item for item in self._queue if item.deadline <= now]
            self._queue = [item for item in self._queue if item.deadline > now]
            taken: list[_Waiting] = []
            size = 0
            while self._queue and len(taken) < MAX_BATCH_MESSAGES:
                if taken and size + self._queue[0].size > MAX_BATCH_BYTES:
                    break
                item = self._queue.pop(0)
                taken.append(item)
                size += item.size
            if taken:
                taken[0].batch = taken
            else:
                self._in_flight -= 1
        for item in expired:
            item.error = gexc.DeadlineExceeded("publish: time ran out waiting to be sent")
        for item in (*expired, *taken[:1]):  # all were queued: each has its event
            assert item.done is not None  # noqa: S101  narrows a type: queued callers have an event
            item.done.set()
