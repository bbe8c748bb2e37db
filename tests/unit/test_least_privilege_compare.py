"""The least-privilege comparison and the call classification, without emulators or Terraform.

``tests/integration/test_least_privilege.py`` runs them on the real grants and calls; here each
rule is shown to fail on a map changed in one place.
"""

from __future__ import annotations

import pytest
from google.cloud.firestore_v1.types import (
    BatchGetDocumentsRequest,
    CommitRequest,
    Document,
    Precondition,
    RunQueryRequest,
    Write,
)
from google.protobuf.timestamp_pb2 import Timestamp
from google.pubsub_v1.types import PublishRequest

from tests.support.google_calls import grpc_calls, storage_call
from tests.support.iam import CALL_PERMISSIONS, ROLE_PERMISSIONS, Grant, Need, compare

DB = ("firestore_database", "projects/p/databases/(default)")
BUCKET = ("bucket", "google_storage_bucket.archive")
TOPIC = ("topic", "google_pubsub_topic.call_events")
GRANTS = [
    Grant("archiver", "roles/storage.objectCreator", BUCKET, "creator"),
    Grant("archiver", "roles/storage.objectViewer", BUCKET, "viewer"),
    Grant("archiver", "roles/datastore.user", DB, "firestore"),
    Grant("publisher", "roles/pubsub.publisher", TOPIC, "publish"),
]
NEEDS = [
    Need("archiver", "storage.objects.insert:ifGenerationMatch=0", BUCKET, "code"),
    Need("archiver", "storage.objects.get", BUCKET, "code"),
    Need("archiver", "google.firestore.v1.Firestore/Commit:create", DB, "code"),
    Need("publisher", "google.pubsub.v1.Publisher/Publish", TOPIC, "code"),
]


def test_exactly_the_used_grants_compare_clean():
    assert compare(GRANTS, NEEDS) == []


def test_a_removed_role_leaves_a_call_without_its_permission():
    grants = [g for g in GRANTS if g.source != "creator"]
    assert compare(grants, NEEDS) == [
        "archiver lacks storage.objects.create on bucket google_storage_bucket.archive for "
        "storage.objects.insert:ifGenerationMatch=0 (code)"
    ]


def test_an_added_call_needs_a_permission_no_role_grants():
    overwrite = Need("archiver", "storage.objects.insert:any", BUCKET, "new code")
    [problem] = compare(GRANTS, [*NEEDS, overwrite])
    assert problem.startswith("archiver lacks storage.objects.delete on bucket")


def test_a_role_nothing_uses_is_reported():
    needs = [n for n in NEEDS if n.operation != "storage.objects.get"]
    assert compare(GRANTS, needs) == [
        "archiver holds roles/storage.objectViewer on bucket google_storage_bucket.archive "
        "(viewer) and nothing uses it"
    ]


def test_a_role_on_another_resource_neither_covers_nor_counts_as_used():
    elsewhere = ("topic", "google_pubsub_topic.dead_letter")
    grants = [*GRANTS[:3], Grant("publisher", "roles/pubsub.publisher", elsewhere, "publish")]
    problems = compare(grants, NEEDS)
    assert len(problems) == 2
    assert problems[0].startswith("publisher lacks pubsub.topics.publish on topic google_pubsub_")
    assert problems[1].startswith("publisher holds roles/pubsub.publisher on topic google_pubsub_")


def test_a_project_grant_covers_every_resource_of_the_project():
    grants = [*GRANTS[:3], Grant("publisher", "roles/pubsub.publisher", ("project", "p"), "wide")]
    assert compare(grants, NEEDS) == []


def test_unknown_roles_and_calls_fail_instead_of_passing():
    grants = [*GRANTS, Grant("archiver", "roles/storage.admin", BUCKET, "admin")]
    needs = [*NEEDS, Need("archiver", "grpc:google.firestore.v1.Firestore/Listen", DB, "code")]
    problems = compare(grants, needs)
    assert "admin: roles/storage.admin is not in ROLE_PERMISSIONS" in problems
    assert any("Listen (code) has no row in CALL_PERMISSIONS" in p for p in problems)


def test_every_row_cites_google_and_every_need_is_grantable_by_some_role():
    rows = {**CALL_PERMISSIONS, **ROLE_PERMISSIONS}
    assert all(row.source.startswith("https://cloud.google.com/") for row in rows.values())
    grantable = set().union(*(role.permissions for role in ROLE_PERMISSIONS.values()))
    needed = set().union(*(row.permissions for row in CALL_PERMISSIONS.values()))
    # storage.objects.delete/update and buckets.get are rows so that such calls are caught:
    # no role here grants them, on purpose.
    assert needed - grantable == {
        "storage.objects.delete",
        "storage.objects.update",
        "storage.buckets.get",
    }


# --------------------------------------------------------------------- classifying requests
def _commit(*writes: Write) -> CommitRequest:
    return CommitRequest(database="projects/p/databases/(default)", writes=list(writes))


DOC = Document(name="projects/p/databases/(default)/documents/c/d")


@pytest.mark.parametrize(
    ("write", "variant"),
    [
        (Write(update=DOC, current_document=Precondition(exists=False)), "create"),
        (Write(update=DOC, current_document=Precondition(exists=True)), "update"),
        (
            Write(update=DOC, current_document=Precondition(update_time=Timestamp(seconds=1))),
            "update",
        ),
        (Write(update=DOC), "upsert"),
        (Write(delete=DOC.name), "delete"),
        (
            Write(delete=DOC.name, current_document=Precondition(update_time=Timestamp(seconds=1))),
            "delete",
        ),
    ],
)
def test_a_commit_is_classified_by_what_each_write_does(write, variant):
    assert grpc_calls("/google.firestore.v1.Firestore/Commit", _commit(write)) == [
        (f"google.firestore.v1.Firestore/Commit:{variant}", DB)
    ]


def test_a_commit_of_several_kinds_of_write_needs_each_kind():
    request = _commit(
        Write(update=DOC, current_document=Precondition(exists=True)), Write(update=DOC)
    )
    assert [op for op, _ in grpc_calls("/google.firestore.v1.Firestore/Commit", request)] == [
        "google.firestore.v1.Firestore/Commit:update",
        "google.firestore.v1.Firestore/Commit:upsert",
    ]


def test_reads_queries_and_publishes_name_their_resource():
    get = BatchGetDocumentsRequest(database="projects/p/databases/(default)")
    query = RunQueryRequest(parent="projects/p/databases/(default)/documents")
    publish = PublishRequest(topic="projects/p/topics/t")
    assert grpc_calls("/google.firestore.v1.Firestore/BatchGetDocuments", get) == [
        ("google.firestore.v1.Firestore/BatchGetDocuments", DB)
    ]
    assert grpc_calls("/google.firestore.v1.Firestore/RunQuery", query) == [
        ("google.firestore.v1.Firestore/RunQuery", DB)
    ]
    assert grpc_calls("/google.pubsub.v1.Publisher/Publish", publish) == [
        ("google.pubsub.v1.Publisher/Publish", ("topic", "projects/p/topics/t"))
    ]
    assert (
        grpc_calls("/google.pubsub.v1.Publisher/DeleteTopic", publish)[0][0] not in CALL_PERMISSIONS
    )
    assert grpc_calls("/google.iam.v1.IAMPolicy/SetIamPolicy", publish)[0][0].startswith("grpc:")


H = "http://127.0.0.1:9023"


@pytest.mark.parametrize(
    ("method", "url", "operation"),
    [
        ("GET", f"{H}/storage/v1/b/arc/o/calls%2Fx%2Fcall.json?projection=noAcl",
         "storage.objects.get"),
        ("GET", f"{H}/download/storage/v1/b/arc/o/calls%2Fx?alt=media", "storage.objects.get"),
        ("POST", f"{H}/upload/storage/v1/b/arc/o?uploadType=multipart&ifGenerationMatch=0",
         "storage.objects.insert:ifGenerationMatch=0"),
        ("POST", f"{H}/upload/storage/v1/b/arc/o?uploadType=resumable&ifGenerationMatch=0",
         "storage.objects.insert:ifGenerationMatch=0"),
        ("POST", f"{H}/upload/storage/v1/b/arc/o?uploadType=multipart",
         "storage.objects.insert:any"),
        ("PUT", f"{H}/upload/storage/v1/b/arc/o?uploadType=resumable&upload_id=abc",
         "storage.resumableSession:PUT"),
        ("DELETE", f"{H}/upload/storage/v1/b/arc/o?uploadType=resumable&upload_id=abc",
         "storage.resumableSession:DELETE"),
        ("GET", f"{H}/storage/v1/b/arc/o?prefix=calls", "storage.objects.list"),
        ("DELETE", f"{H}/storage/v1/b/arc/o/calls%2Fx", "storage.objects.delete"),
        ("PATCH", f"{H}/storage/v1/b/arc/o/calls%2Fx", "storage.objects.patch"),
        ("GET", f"{H}/storage/v1/b/arc?projection=noAcl", "storage.buckets.get"),
        ("POST", f"{H}/storage/v1/b/arc/o/x/rewriteTo/b/y/o/z",
         "http:POST /storage/v1/b/arc/o/x/rewriteTo/b/y/o/z"),
    ],
)  # fmt: skip
def test_storage_requests_are_classified_as_json_api_methods(method, url, operation):
    assert storage_call(method, url) == (operation, ("bucket", "arc"))
