"""``ttma-relay forget`` on the emulators: its report, and the refusals that touch nothing.

The whole pipeline case (two people, the local stack) is tests/e2e/test_cli_forget.py.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.support.payloads import PHONE_HASH_KEY
from ttma_relay.adapters.call_index import CallIndex, call_metadata
from ttma_relay.adapters.deliveries import DeliveryClaims
from ttma_relay.cli import main
from ttma_relay.contract.call_keys import call_key

pytestmark = pytest.mark.emulator
NUMBER = "+16475550123"


@pytest.fixture
def forget(emulators, archive_bucket, calls_collection, deliveries_collection):
    env = {
        **emulators,
        "ARCHIVE_BUCKET": archive_bucket.name,
        "CALLS_COLLECTION": calls_collection,
        "DELIVERIES_COLLECTION": deliveries_collection,
        "TTMA_PHONE_HASH_KEY": PHONE_HASH_KEY,
    }

    def run(*args: str, **overrides: str | None):
        return CliRunner().invoke(
            main, ["forget", *args], env={**env, **overrides}, catch_exceptions=False
        )

    return run


def archived(archive_bucket, firestore_client, calls_collection, deliveries_collection, n: int):
    """Call ``v3:n`` archived: two objects, an index document, a published delivery record."""
    call_id = f"v3:forget-{n}"
    key = call_key(call_id)
    prefix = f"calls/2026/05/25/{key}/"
    for name in ("call.json", "transcript.txt"):
        archive_bucket.blob(prefix + name).upload_from_string(b"{}")
    call = {"id": call_id, "direction": "outbound", "calledNumber": NUMBER}
    CallIndex(firestore_client, calls_collection).record(
        key,
        {**call_metadata(call, phone_hash_key=PHONE_HASH_KEY),
         "archivePrefix": f"gs://{archive_bucket.name}/{prefix}"},
    )  # fmt: skip
    claims = DeliveryClaims(firestore_client, deliveries_collection)
    claims.mark_published(claims.claim(f"d-{n}", call_id), f"m-{n}")
    return call_id, prefix


def test_the_json_report_lists_every_object_and_record(
    forget, archive_bucket, firestore_client, calls_collection, deliveries_collection
):
    call_id, prefix = archived(
        archive_bucket, firestore_client, calls_collection, deliveries_collection, 1
    )
    dry = forget("--call-id", call_id, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    [report] = json.loads(dry.stdout)["calls"]
    assert report["callId"] == call_id and report["archivePrefix"] == prefix
    assert [o.rpartition("#")[0] for o in report["objects"]] == [
        prefix + "call.json", prefix + "transcript.txt"
    ]  # fmt: skip
    assert report["deliveryRecords"] == ["d-1"] and report["indexed"] and not report["done"]
    assert len(list(archive_bucket.list_blobs())) == 2  # a dry run removes nothing

    done = forget("--call-id", call_id, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["calls"][0]["done"] is True
    assert list(archive_bucket.list_blobs()) == []
    assert CallIndex(firestore_client, calls_collection).get(call_key(call_id)) is None


@pytest.mark.parametrize(
    ("args", "overrides", "says"),
    [
        ((), {}, "give --call-id or --phone"),
        (("--phone", NUMBER), {"TTMA_PHONE_HASH_KEY": None}, "TTMA_PHONE_HASH_KEY"),
        (("--phone", NUMBER, "--phone-hash-key", "short"), {}, "at least 32"),
        (("--phone", "no digits here"), {}, "no phone number digits"),
        (("--call-id", ""), {}, "non-empty"),
        (("--call-id", "v3:x", "--bigquery-table", "x; DROP TABLE y"), {}, "PROJECT.DATASET"),
    ],
)
def test_bad_input_is_a_usage_error_that_touches_nothing_and_never_echoes_the_number(
    forget, archive_bucket, firestore_client, calls_collection, deliveries_collection,
    args, overrides, says,
):  # fmt: skip
    archived(archive_bucket, firestore_client, calls_collection, deliveries_collection, 2)
    result = forget(*args, **overrides)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert NUMBER not in result.output and "5550123" not in result.output
    assert len(list(archive_bucket.list_blobs())) == 2
