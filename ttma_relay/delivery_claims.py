"""The delivery state machine in Firestore: claim → (publish) → mark published, or release.

One document per deliveryId. ``create`` is the only atomic step; every other write is
conditional on the ``update_time`` this process last saw, so no contended transactions are
needed (the emulator cannot run them under load). See ARCHITECTURE.md, "Ingest".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

CLAIM_LEASE_SECONDS = 30.0
STATE_CLAIMED = "claimed"
STATE_PUBLISHED = "published"
_SAFE_DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,254}")


class ClaimError(Exception):
    """Base of the outcomes that stop a delivery from being published now."""


class AlreadyPublished(ClaimError):
    def __init__(self, message_id: str | None) -> None:
        super().__init__("delivery already published")
        self.message_id = message_id


class DeliveryInFlight(ClaimError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("another request is publishing this delivery")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    reference: Any  # firestore.DocumentReference
    update_time: Any  # the document's update_time after our last write
    taken_over: bool = False


def delivery_document_id(delivery_id: str) -> str:
    """Firestore document id for a delivery id: itself when safe, else a stable hash.

    Ids with '/' or reserved forms (``__x__``) cannot be document ids; hashing keeps them
    deduplicated instead of refusing (and so losing) a delivery with an unusual id.
    """
    if _SAFE_DOC_ID.fullmatch(delivery_id) and not delivery_id.startswith("__"):
        return delivery_id
    return "sha256-" + hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()


class DeliveryClaims:
    """Claims, releases and completes deliveries in ``collection``."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        *,
        ttl_days: int = 30,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._collection = collection
        self._ttl = timedelta(days=ttl_days)
        self._lease = timedelta(seconds=lease_seconds)
        self._timeout = timeout

    def _reference(self, delivery_id: str) -> Any:
        return self._client.collection(self._collection).document(
            delivery_document_id(delivery_id)
        )

    def claim(self, delivery_id: str, call_id: str, *, source: str = "webhook") -> Claim:
        """Claim a delivery for publishing. Raises AlreadyPublished or DeliveryInFlight."""
        reference = self._reference(delivery_id)
        for _ in range(3):  # a concurrent release can delete the document between our reads
            now = datetime.now(UTC)
            document = {
                "deliveryId": delivery_id,
                "callId": call_id,
                "source": source,
                "state": STATE_CLAIMED,
                "claimedAt": now,
                "expireAt": now + self._ttl,
                "attempts": 1,
            }
            try:
                result = reference.create(document, timeout=self._timeout)
                return Claim(delivery_id, reference, result.update_time)
            except gexc.AlreadyExists:
                pass
            snapshot = reference.get(timeout=self._timeout)
            if not snapshot.exists:
                continue
            claim = self._take_over_or_raise(delivery_id, reference, snapshot)
            if claim is not None:
                return claim
        raise DeliveryInFlight(retry_after_seconds=1)

    def _take_over_or_raise(self, delivery_id: str, reference: Any, snapshot: Any) -> Claim | None:
        data = snapshot.to_dict() or {}
        if data.get("state") == STATE_PUBLISHED:
            raise AlreadyPublished(data.get("messageId"))
        now = datetime.now(UTC)
        claimed_at = data.get("claimedAt") or now
        lease_end = claimed_at + self._lease
        if lease_end > now:
            remaining = (lease_end - now).total_seconds()
            raise DeliveryInFlight(retry_after_seconds=max(1, int(remaining + 0.999)))
        # The lease expired: the request that held it died. Take the claim over, but only if
        # nobody else changed the document since we read it.
        try:
            result = reference.update(
                {"claimedAt": now, "attempts": firestore.Increment(1)},
                option=self._client.write_option(last_update_time=snapshot.update_time),
                timeout=self._timeout,
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # someone else took it over or released it; look again
        return Claim(delivery_id, reference, result.update_time, taken_over=True)

    def release(self, claim: Claim) -> None:
        """Give the claim up after a failed publish, so the sender's retry can publish."""
        claim.reference.delete(
            option=self._client.write_option(last_update_time=claim.update_time),
            timeout=self._timeout,
        )

    def mark_published(self, claim: Claim, message_id: str) -> None:
        claim.reference.update(
            {
                "state": STATE_PUBLISHED,
                "messageId": message_id,
                "publishedAt": datetime.now(UTC),
            },
            option=self._client.write_option(last_update_time=claim.update_time),
            timeout=self._timeout,
        )

    def state_of(self, delivery_id: str) -> dict[str, Any] | None:
        snapshot = self._reference(delivery_id).get(timeout=self._timeout)
        return snapshot.to_dict() if snapshot.exists else None
