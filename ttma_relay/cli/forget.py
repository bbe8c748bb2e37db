"""``ttma-relay forget``: erase one call, or every call of one person's number.

For each call, in this order (each step is idempotent: run it again after a failure):

1. the tombstones (``CallTombstones.forget``): the call's marker says ``forgotten`` for good and
   each of its delivery records becomes ``{state, forgottenAt, expireAt}``, so nothing publishes
   or archives the call again (reconcile, backfill, a vendor retry, a replay, an archiver
   retrying a late recording);
2. every object under its archive prefix, every generation (a versioned bucket keeps deleted
   objects as noncurrent versions otherwise);
3. its index document.

Calls are found by id, or by the other party's number through the index's keyed hashes
(``contract.party_numbers``; the key is ``TTMA_PHONE_HASH_KEY``). What it prints names call ids,
object names (dates and call keys) and counts; never the number, nor anything from inside
the objects. BigQuery rows (the optional subscription) are not deleted here: with
``--bigquery-table`` it prints the ``bq`` command that runs the DML (SECURITY.md, "Erasure").
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from ttma_relay.cli.common import (
    EXIT_REFUSED,
    check_emulator,
    collection_option,
    database_option,
    fail,
    google_errors,
    project_option,
    require_google_credentials,
    warn,
)
from ttma_relay.contract.call_keys import OBJECT_ROOT, CallKeyError, call_key
from ttma_relay.contract.party_numbers import PartyNumberError, number_hash

TIMEOUT_SECONDS = 30.0
HASHES_FIELD = "partyNumberHashes"


@dataclass
class Erasure:
    """What ``forget`` finds (and, unless a dry run, removes) of one call."""

    call_id: str
    call_key: str
    indexed: bool
    prefix: str | None  # the index's archivePrefix; None: the whole archive was searched
    objects: list[str] = field(default_factory=list)  # "name#generation"
    delivery_records: list[str] = field(default_factory=list)
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "callKey": self.call_key,
            "indexed": self.indexed,
            "archivePrefix": self.prefix,
            "objects": self.objects,
            "deliveryRecords": self.delivery_records,
            "done": self.done,
        }


def _clients(project: str, database: str) -> tuple[Any, Any]:
    check_emulator("FIRESTORE_EMULATOR_HOST", "Firestore")
    check_emulator("STORAGE_EMULATOR_HOST", "Storage")
    require_google_credentials("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
    from google.cloud import firestore, storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        storage_client = storage.Client(project=project, credentials=AnonymousCredentials())
    else:
        storage_client = storage.Client(project=project)
    return firestore.Client(project=project, database=database), storage_client


def read_phone(value: str) -> str:
    """``--phone``: the number, or ``-`` to read it from stdin (out of the shell's history)."""
    if value == "-":
        value = sys.stdin.readline()
    return value.strip()


def calls_with_number(index: Any, key: str, number: str) -> list[tuple[str, str]]:
    """``(call id, call key)`` of every indexed call whose other party has ``number``."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    wanted = number_hash(key, number)
    query = index.where(filter=FieldFilter(HASHES_FIELD, "array_contains", wanted))
    found = []
    for snapshot in query.stream(timeout=TIMEOUT_SECONDS):
        call_id = (snapshot.to_dict() or {}).get("callId")
        found.append((call_id if isinstance(call_id, str) else snapshot.id, snapshot.id))
    return sorted(found)


def _archive_names(bucket: Any, prefix: str | None, key: str) -> list[str]:
    """Every generation of every object of the call (``name#generation``): under ``prefix``,
    or, without one, anywhere under ``calls/`` (the whole archive is listed: slow, but a call
    is never left behind because its index document went first)."""
    blobs = bucket.list_blobs(
        prefix=prefix or OBJECT_ROOT + "/", versions=True, timeout=TIMEOUT_SECONDS
    )
    if prefix is None:  # calls/YYYY/MM/DD/<key>/<object>
        blobs = [b for b in blobs if b.name.split("/")[4:5] == [key]]
    return sorted(f"{b.name}#{b.generation}" for b in blobs)


def _prefix_in(bucket_name: str, document: dict[str, Any] | None) -> str | None:
    uri = (document or {}).get("archivePrefix")
    start = f"gs://{bucket_name}/"
    if isinstance(uri, str) and uri.startswith(start) and uri.endswith("/"):
        return uri[len(start) :] or None
    return None


def plan(call_id: str, key: str, *, index: Any, bucket: Any, tombstones: Any) -> Erasure:
    """What there is of the call in the archive, the index and the delivery records."""
    snapshot = index.document(key).get(timeout=TIMEOUT_SECONDS)
    prefix = _prefix_in(bucket.name, snapshot.to_dict() if snapshot.exists else None)
    return Erasure(
        call_id,
        key,
        snapshot.exists,
        prefix,
        _archive_names(bucket, prefix, key),
        tombstones.record_ids(call_id),
    )


def erase(erasure: Erasure, *, index: Any, bucket: Any, tombstones: Any) -> None:
    """Tombstones first (nothing archives the call again), then the objects, then the index
    document; then looks again, for what an archiver already under way may have written."""
    from google.api_core import exceptions as gexc

    tombstones.forget(erasure.call_id, erasure.delivery_records)
    for entry in erasure.objects:
        name, _, generation = entry.rpartition("#")
        try:
            bucket.blob(name, generation=int(generation)).delete(timeout=TIMEOUT_SECONDS)
        except gexc.NotFound:
            pass  # gone already: what we wanted
    index.document(erasure.call_key).delete(timeout=TIMEOUT_SECONDS)
    left = _archive_names(bucket, erasure.prefix, erasure.call_key) if erasure.prefix else []
    if left or index.document(erasure.call_key).get(timeout=TIMEOUT_SECONDS).exists:
        raise RuntimeError(
            f"{erasure.call_id}: written again while it was erased ({len(left)} object(s)): "
            "run forget again"
        )
    erasure.done = True


BIGQUERY_DML = "DELETE FROM `{table}` WHERE JSON_VALUE(data, '$.data.id') IN UNNEST(@call_ids)"
_TABLE = re.compile(r"[A-Za-z0-9_:.-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+")


def bigquery_command(table: str, call_ids: list[str]) -> str:
    """The ``bq`` command that deletes the calls' rows from the BigQuery subscription's table:
    the ids are a query parameter, never spliced into the statement."""
    if not _TABLE.fullmatch(table):
        raise click.BadParameter("use PROJECT.DATASET.TABLE", param_hint="--bigquery-table")
    parameter = "call_ids:ARRAY<STRING>:" + json.dumps(call_ids)
    statement = BIGQUERY_DML.format(table=table)
    return shlex.join(
        ["bq", "query", "--use_legacy_sql=false", f"--parameter={parameter}", statement]
    )


@click.command("forget", short_help="Erase calls: archive objects, index, delivery records.")
@click.option("--call-id", "call_ids", multiple=True, metavar="CALL_ID",
              help="A call to erase (repeatable).")  # fmt: skip
@click.option("--phone", metavar="NUMBER",
              help="Erase every indexed call with this other-party number; '-' reads it from "
                   "stdin (keeps it out of the shell history).")  # fmt: skip
@click.option("--phone-hash-key", envvar="TTMA_PHONE_HASH_KEY", show_envvar=True,
              help="Key of the index's number hashes (secret ttma-phone-hash-key).")  # fmt: skip
@click.option("--bucket", envvar="ARCHIVE_BUCKET", required=True, show_envvar=True,
              help="The archive bucket.")  # fmt: skip
@click.option("--deliveries-collection", envvar="DELIVERIES_COLLECTION",
              default="ttma_deliveries", show_default=True, show_envvar=True,
              help="Firestore collection of the delivery records.")  # fmt: skip
@click.option("--bigquery-table", metavar="PROJECT.DATASET.TABLE",
              help="Print the DML that deletes the calls' rows from this table.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@project_option
@database_option
@collection_option
def forget_command(
    call_ids: tuple[str, ...],
    phone: str | None,
    phone_hash_key: str | None,
    bucket: str,
    deliveries_collection: str,
    bigquery_table: str | None,
    dry_run: bool,
    as_json: bool,
    project: str,
    database: str,
    collection: str,
) -> None:
    """Erase calls from the archive (every object generation), the index and the delivery
    records, leaving tombstones so that nothing archives them again.

    Give --call-id (repeatable) or --phone. Prints what it removed (or, with --dry-run, would
    remove): call ids, object names and counts, never the number. Exit code 0 done (also when
    nothing matched), 1 refused or incomplete (run it again), 2 unreachable.
    """
    from ttma_relay.adapters.deliveries import CallTombstones

    if not call_ids and phone is None:
        raise click.UsageError("give --call-id or --phone")
    if bigquery_table is not None:
        bigquery_command(bigquery_table, [])  # a bad table name stops here, before erasing
    wanted: list[tuple[str, str]] = []
    for call_id in call_ids:
        try:
            wanted.append((call_id, call_key(call_id)))
        except CallKeyError as error:
            raise click.BadParameter(str(error), param_hint="--call-id") from None
    firestore_client, storage_client = _clients(project, database)
    index = firestore_client.collection(collection)
    if phone is not None:
        if not phone_hash_key:
            raise click.UsageError(
                "--phone needs the key of the index's number hashes: TTMA_PHONE_HASH_KEY or "
                "--phone-hash-key (gcloud secrets versions access latest "
                "--secret=ttma-phone-hash-key)"
            )
        try:
            with google_errors("searching the call index"):
                found = calls_with_number(index, phone_hash_key, read_phone(phone))
        except (PartyNumberError, ValueError) as error:  # the message never holds the number
            raise click.BadParameter(str(error), param_hint="--phone") from None
        if not found:
            warn("no indexed call has that number (calls indexed before partyNumberHashes "
                 "existed are found only by --call-id)")  # fmt: skip
        wanted += [pair for pair in found if pair not in wanted]
    archive = storage_client.bucket(bucket)
    tombstones = CallTombstones(firestore_client, deliveries_collection, timeout=TIMEOUT_SECONDS)
    erasures: list[Erasure] = []
    failed: list[str] = []
    for call_id, key in wanted:
        with google_errors(f"reading what there is of {call_id}"):
            erasure = plan(call_id, key, index=index, bucket=archive, tombstones=tombstones)
        erasures.append(erasure)
        if erasure.prefix is None:
            warn(f"{call_id} has no archive prefix in the index: searched the whole archive")
        if dry_run:
            continue
        try:
            with google_errors(f"erasing {call_id}"):
                erase(erasure, index=index, bucket=archive, tombstones=tombstones)
        except RuntimeError as error:
            failed.append(call_id)
            warn(str(error))
        except SystemExit:
            failed.append(call_id)
            raise
    _report(erasures, dry_run=dry_run, as_json=as_json, bigquery_table=bigquery_table)
    if failed:
        fail(f"{len(failed)} call(s) not completely erased: run forget again", EXIT_REFUSED)


def _report(
    erasures: list[Erasure], *, dry_run: bool, as_json: bool, bigquery_table: str | None
) -> None:
    ids = [e.call_id for e in erasures]
    statement = bigquery_command(bigquery_table, ids) if bigquery_table and ids else None
    if as_json:
        body = {"dryRun": dry_run, "calls": [e.to_json() for e in erasures], "bigquery": statement}
        click.echo(json.dumps(body, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for e in erasures:
        click.echo(f"{e.call_id}: {verb} {len(e.objects)} object(s), "
                   f"{'the' if e.indexed else 'no'} index document, "
                   f"{len(e.delivery_records)} delivery record(s)")  # fmt: skip
        for entry in e.objects:
            click.echo(f"  gs://…/{entry}")
    click.echo(f"{len(erasures)} call(s) {'found' if dry_run else 'forgotten'}")
    if statement:
        click.echo("BigQuery rows are not deleted by forget; run:")
        click.echo(statement)
