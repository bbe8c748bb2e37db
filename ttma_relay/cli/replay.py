"""``ttma-relay replay``: dead letters from the hold subscription back onto the call-events topic.

Each selected dead letter is published again with its data bytes unchanged and its attributes
as they were, except: ``source`` becomes ``replay``, the attributes Pub/Sub added when it
dead-lettered the message (``CloudPubSubDeadLetter*``) are dropped, and ``Content-Type`` is
``application/json`` when the message had none. Nothing is recomputed from the data.

Order per dead letter: claim ``replay:<dead letter messageId>`` in the deliveries collection
(``DeliveryClaims``) → publish and wait for the message id → mark the claim published → ack the
dead letter. A failed publish releases the claim and leaves the dead letter in the hold
subscription. Acked dead letters are no longer pulled (the hold subscription keeps them only as
retained acked messages, for ``seek``), so a second run does not replay them; the claim stops a
second operator running at the same time, and a run that died between publish and ack, from
publishing again.

Dead letters that are not selected, are only listed (``--dry-run``) or failed are kept leased
while the run pulls on (so that a pull does not hand them out again) and handed back at the
end with ``modify_ack_deadline(0)``; killed outright, the lease runs out by itself within
``LEASE_SECONDS``. Pub/Sub counts nothing for that: the hold subscription has no dead-letter
policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from ttma_relay.cli.calls import When
from ttma_relay.cli.common import (
    EXIT_REFUSED,
    check_emulator,
    database_option,
    google_errors,
    progress,
    project_option,
    require_google_credentials,
    warn,
)
from ttma_relay.contract.timestamps import iso_millis

DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"  # what Pub/Sub adds when it dead-letters
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"
DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
ORIGINAL_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"
CONTENT_TYPE = "application/json"
CLAIM_PREFIX = "replay:"
PULL_MAX_MESSAGES = 100
PULL_WAIT_SECONDS = 2.0
EMPTY_PULLS_TO_STOP = 2  # a unary pull may come back empty while messages remain
LEASE_SECONDS = 120  # how long a pulled dead letter stays away from other pullers
RENEW_AFTER_SECONDS = 45.0
WORKERS = 8
ACK_CHUNK = 500

REPLAYED = "replayed"
WOULD_REPLAY = "would-replay"
ALREADY_REPLAYED = "already-replayed"
DUPLICATE = "duplicate"
IN_FLIGHT = "in-flight"
FAILED = "failed"
FORGOTTEN = "forgotten"  # ``ttma-relay forget`` erased the call: the dead letter is dropped
SKIPPED = frozenset({ALREADY_REPLAYED, DUPLICATE, IN_FLIGHT, FORGOTTEN})
COLUMNS = ("DEAD-LETTERED (UTC)", "CALL ID", "SOURCE SUBSCRIPTION", "ATTEMPTS", "ACTION")


def replay_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """The replayed message's attributes: as they were, ``source=replay``, no dead-letter ones."""
    kept = {k: v for k, v in attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}
    kept["source"] = "replay"
    kept.setdefault("Content-Type", CONTENT_TYPE)
    return kept


@dataclass
class DeadLetter:
    ack_id: str
    message_id: str
    publish_time: datetime  # when it was dead-lettered (published on the dead-letter topic)
    attributes: dict[str, str]
    data: bytes | None  # dropped once handled
    size: int
    action: str = ""
    replay_message_id: str | None = None
    duplicate_of: str | None = None
    error: str | None = None
    acked: bool = False

    @classmethod
    def from_received(cls, received: Any) -> DeadLetter:
        message = received.message
        return cls(
            ack_id=received.ack_id,
            message_id=message.message_id,
            publish_time=message.publish_time.astimezone(UTC),
            attributes=dict(message.attributes),
            data=bytes(message.data),
            size=len(message.data),
        )

    @property
    def call_id(self) -> str:
        return self.attributes.get("callId", "")

    @property
    def replay_key(self) -> str:
        """Equal for dead letters of the same message (e.g. two subscriptions gave up on it):
        one replay reaches every subscription, so the others are acked as duplicates."""
        digest = hashlib.sha256(self.data or b"")
        digest.update(json.dumps(replay_attributes(self.attributes), sort_keys=True).encode())
        return digest.hexdigest()

    def as_json(self) -> dict[str, Any]:
        attempts = self.attributes.get(DELIVERY_COUNT)
        document: dict[str, Any] = {
            "messageId": self.message_id,
            "publishTime": iso_millis(self.publish_time),
            "callId": self.call_id or None,
            "deliveryId": self.attributes.get("deliveryId"),
            "source": self.attributes.get("source"),
            "sourceSubscription": self.attributes.get(SOURCE_SUBSCRIPTION),
            "sourceSubscriptionProject": self.attributes.get(SOURCE_PROJECT),
            "deliveryAttempts": int(attempts) if (attempts or "").isdigit() else None,
            "originalPublishTime": self.attributes.get(ORIGINAL_PUBLISH_TIME),
            "bytes": self.size,
            "action": self.action,
        }
        for name, value in (("replayMessageId", self.replay_message_id),
                            ("duplicateOf", self.duplicate_of), ("error", self.error)):  # fmt: skip
            if value is not None:
                document[name] = value
        return document

    def row(self) -> tuple[str, ...]:
        action = self.action
        if self.error:
            action = f"{action}: {self.error}"
        elif self.duplicate_of and self.action == DUPLICATE:
            action = f"{action} of {self.duplicate_of}"
        return (
            self.publish_time.strftime("%Y-%m-%d %H:%M:%S"),
            self.call_id or "-",
            self.attributes.get(SOURCE_SUBSCRIPTION) or "-",
            self.attributes.get(DELIVERY_COUNT) or "-",
            action,
        )


@dataclass(frozen=True)
class Selection:
    call_ids: frozenset[str]
    since: datetime | None
    until: datetime | None

    def __call__(self, letter: DeadLetter) -> bool:
        if self.call_ids and letter.call_id not in self.call_ids:
            return False
        if self.since is not None and letter.publish_time < self.since:
            return False
        return self.until is None or letter.publish_time < self.until


@dataclass
class Leases:
    """Pulled dead letters this run keeps away from other pullers until it hands them back."""

    subscriber: Any
    subscription: str
    held: dict[str, str] = field(default_factory=dict)  # messageId → ack id
    renewed: float = field(default_factory=time.monotonic)

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), ACK_CHUNK):
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": ack_ids[start : start + ACK_CHUNK],
                    "ack_deadline_seconds": seconds,
                }
            )

    def lease(self, ack_ids: list[str]) -> None:
        if ack_ids:
            self._modify(ack_ids, LEASE_SECONDS)

    def hold(self, letter: DeadLetter) -> None:
        self.held[letter.message_id] = letter.ack_id

    def renew(self) -> None:
        if self.held and time.monotonic() - self.renewed > RENEW_AFTER_SECONDS:
            self._modify(list(self.held.values()), LEASE_SECONDS)
            self.renewed = time.monotonic()

    def hand_back(self) -> None:
        """``modify_ack_deadline(0)``: the held dead letters can be pulled again at once."""
        held, self.held = list(self.held.values()), {}
        with contextlib.suppress(Exception):  # else their lease simply runs out
            self._modify(held, 0)


def pull_dead_letters(subscriber: Any, subscription: str, leases: Leases) -> Iterator[list[Any]]:
    """Batches of received messages until the subscription has nothing more to give."""
    from google.api_core import exceptions as gexc

    empty = 0
    while empty < EMPTY_PULLS_TO_STOP:
        leases.renew()
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": PULL_MAX_MESSAGES},
                timeout=PULL_WAIT_SECONDS,
                retry=None,
            )
            received = list(response.received_messages)
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
            received = []
        new = [r for r in received if r.message.message_id not in leases.held]
        for again in received:  # a lease ran out: keep the newest ack id of a held one
            if again.message.message_id in leases.held:
                leases.held[again.message.message_id] = again.ack_id
        leases.lease([r.ack_id for r in received])
        empty = 0 if new else empty + 1
        if new:
            yield new


class Replayer:
    """Claim → publish → mark published → ack, per dead letter."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        publisher: Any,
        claims: Any,
        tombstones: Any,
        *,
        dry_run: bool,
    ) -> None:
        self.subscriber = subscriber
        self.subscription = subscription
        self.publisher = publisher
        self.claims = claims
        self.tombstones = tombstones
        self.dry_run = dry_run

    def ack(self, letter: DeadLetter) -> None:
        self.subscriber.acknowledge(
            request={"subscription": self.subscription, "ack_ids": [letter.ack_id]}
        )

    def replay(self, letter: DeadLetter) -> None:
        """Sets ``letter.action``; acks the dead letter only once its replay is published."""
        from ttma_relay.adapters.deliveries import (
            AlreadyPublished,
            DeliveryInFlight,
            PublishFailed,
            publish_once,
        )

        claim_id = CLAIM_PREFIX + letter.message_id
        try:
            forgotten = bool(letter.call_id) and self.tombstones.is_forgotten(letter.call_id)
        except Exception as error:  # shown per message, counted as failed
            letter.action, letter.error = FAILED, f"tombstone lookup: {type(error).__name__}"
            return
        if forgotten:  # erased: never published again; the dead letter goes too (not dry)
            letter.action = FORGOTTEN
            if not self.dry_run:
                self._ack_or_note(letter)
            return
        if self.dry_run:
            try:
                state = self.claims.state_of(claim_id)
            except Exception as error:  # shown per message, counted as failed
                letter.action, letter.error = FAILED, f"claim lookup: {type(error).__name__}"
                return
            published = (state or {}).get("state") == "published"
            letter.action = ALREADY_REPLAYED if published else WOULD_REPLAY
            return
        try:
            published = publish_once(
                self.claims,
                self.publisher,
                delivery_id=claim_id,
                call_id=letter.call_id,
                source="replay",
                data=letter.data,
                attributes=replay_attributes(letter.attributes),
            )
        except AlreadyPublished as done:  # replayed before, the ack was lost: ack it now
            letter.action, letter.replay_message_id = ALREADY_REPLAYED, done.message_id
            self._ack_or_note(letter)
            return
        except DeliveryInFlight:
            letter.action = IN_FLIGHT
            return
        except PublishFailed as failed:  # the dead letter stays; the claim went with it
            prefix = "claim: " if failed.stage == "claim" else ""
            letter.action, letter.error = FAILED, prefix + failed.cause
            return
        letter.action, letter.replay_message_id = REPLAYED, published.message_id
        if published.mark_failed:  # it is on the topic: ack anyway
            warn(f"dead letter {letter.message_id}: replayed, but its claim was not marked "
                 f"published ({published.mark_failed})")  # fmt: skip
        self._ack_or_note(letter)

    def duplicate(self, letter: DeadLetter, first: DeadLetter) -> None:
        """A dead letter of the same message as ``first``: acked once ``first`` is replayed."""
        letter.duplicate_of = first.message_id
        if first.action == FAILED:
            letter.action, letter.error = FAILED, f"as {first.message_id}"
            return
        letter.action = DUPLICATE
        if first.acked:
            self._ack_or_note(letter)

    def _ack_or_note(self, letter: DeadLetter) -> None:
        try:
            self.ack(letter)
            letter.acked = True
        except Exception as error:  # the next run finds its claim published
            warn(f"dead letter {letter.message_id}: replayed, but the ack failed "
                 f"({type(error).__name__}); the next replay acks it")  # fmt: skip


def process(
    batches: Iterable[list[Any]],
    select: Selection,
    replayer: Replayer,
    leases: Leases,
    bar: Any,
) -> tuple[list[DeadLetter], int]:
    """Handle every pulled dead letter; returns the selected ones and how many were not.

    Dead letters of the same message (``replay_key``) are replayed once: the others are
    ``duplicate`` and acked once that replay is published. What is not acked is held and
    handed back at the end."""
    handled: list[DeadLetter] = []
    replayed: dict[str, DeadLetter] = {}  # replay key → the dead letter replayed for it
    not_selected = 0
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for batch in batches:
            groups: dict[str, list[DeadLetter]] = {}
            for received in batch:
                letter = DeadLetter.from_received(received)
                if select(letter):
                    handled.append(letter)
                    groups.setdefault(letter.replay_key, []).append(letter)
                else:
                    not_selected += 1
                    leases.hold(letter)
            firsts = {key: replayed.get(key) or group[0] for key, group in groups.items()}
            todo = [first for key, first in firsts.items() if key not in replayed]
            for _ in pool.map(replayer.replay, todo):
                bar.update()
            for key, group in groups.items():
                first = firsts[key]
                if first.action in (REPLAYED, ALREADY_REPLAYED, WOULD_REPLAY):
                    replayed.setdefault(key, first)
                for letter in group:
                    if letter is not first:
                        replayer.duplicate(letter, first)
                        bar.update()
                    letter.data = None  # bodies can be MiB each: keep only what is printed
                    if not letter.acked:
                        leases.hold(letter)
    return handled, not_selected


def render_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [COLUMNS, *rows]
    )


def summary(letters: list[DeadLetter], not_selected: int, *, dry_run: bool) -> str:
    replayed = sum(1 for x in letters if x.action in (REPLAYED, WOULD_REPLAY))
    skipped = sum(1 for x in letters if x.action in SKIPPED)
    failed = sum(1 for x in letters if x.action == FAILED)
    line = (
        f"dry run: would replay {replayed}, skip {skipped}, failed {failed}; nothing changed"
        if dry_run
        else f"replayed {replayed}, skipped {skipped}, failed {failed}"
    )
    if not_selected:
        line += f" ({not_selected} dead letter{'s' * (not_selected != 1)} not selected, left"
        line += " in the hold subscription)"
    return line


@click.command("replay", short_help="Publish dead letters again (source=replay), bytes unchanged.")
@click.option(
    "--topic",
    envvar="CALL_EVENTS_TOPIC",
    default="ttma-call-events",
    show_default=True,
    show_envvar=True,
    help="Topic id of the call events (the replays go there).",
)
@click.option(
    "--subscription",
    envvar="DEAD_LETTER_SUBSCRIPTION",
    show_default="<topic>-dead-letter-hold",
    show_envvar=True,
    help="Dead-letter hold subscription id (or its full path).",
)
@click.option("--call-id", "call_ids", multiple=True, help="Only this call (repeatable).")
@click.option("--since", type=When(), help="Dead-lettered at or after: YYYY-MM-DD, ISO time, 2h.")
@click.option(
    "--until", type=When(end_of_day=True), help="Dead-lettered before (a date: that whole day)."
)
@click.option("--dry-run", is_flag=True, help="List what would be done; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
@project_option
@database_option
@click.option(
    "--deliveries-collection",
    envvar="DELIVERIES_COLLECTION",
    default="ttma_deliveries",
    show_default=True,
    show_envvar=True,
    help="Firestore collection of the delivery records (holds the replay claims).",
)
def replay_command(
    topic: str,
    subscription: str | None,
    call_ids: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    as_json: bool,
    project: str,
    database: str,
    deliveries_collection: str,
) -> None:
    """Publish the dead letters of the hold subscription again on the call-events topic.

    The data bytes are unchanged; the attributes too, except source=replay and without the
    CloudPubSubDeadLetter* attributes Pub/Sub added. Each dead letter is acknowledged once its
    replay is published; a failed one stays in the hold subscription. Lists per dead letter:
    when it was dead-lettered, call id, the subscription that gave up, its delivery attempts
    and the action. --call-id, --since and --until select; --dry-run changes nothing.

    Exit code 0 all selected replayed (or nothing to do), 1 some failed or the subscription
    does not exist, 2 usage error or unreachable.
    """
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be before --until")
    check_emulator("PUBSUB_EMULATOR_HOST", "Pub/Sub")
    check_emulator("FIRESTORE_EMULATOR_HOST", "Firestore")
    require_google_credentials("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
    from google.cloud import firestore, pubsub_v1

    from ttma_relay.adapters.deliveries import CallTombstones, DeliveryClaims
    from ttma_relay.adapters.publisher import CallEventPublisher

    if subscription is None:
        subscription = f"{topic}-dead-letter-hold"
    if "/" not in subscription:
        subscription = f"projects/{project}/subscriptions/{subscription}"
    subscriber = pubsub_v1.SubscriberClient()
    publisher_client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(publisher_client, publisher_client.topic_path(project, topic))
    db = firestore.Client(project=project, database=database)
    claims = DeliveryClaims(db, deliveries_collection)
    tombstones = CallTombstones(db, deliveries_collection)
    replayer = Replayer(subscriber, subscription, publisher, claims, tombstones, dry_run=dry_run)
    leases = Leases(subscriber, subscription)
    select = Selection(frozenset(call_ids), since, until)
    try:
        with (
            google_errors(f"reading dead letters from {subscription}"),
            progress(desc="dry run" if dry_run else "replaying", unit="msg") as bar,
        ):
            try:
                letters, not_selected = process(
                    pull_dead_letters(subscriber, subscription, leases),
                    select, replayer, leases, bar,
                )  # fmt: skip
            finally:
                leases.hand_back()
    finally:
        subscriber.close()
        publisher_client.stop()
    letters.sort(key=lambda x: (x.publish_time, x.message_id))
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter.as_json(), ensure_ascii=False, sort_keys=True))
    elif letters:
        click.echo(render_table([letter.row() for letter in letters]))
    click.echo(summary(letters, not_selected, dry_run=dry_run), err=True)
    if any(letter.action == FAILED for letter in letters):
        raise SystemExit(EXIT_REFUSED)
