"""Least privilege as data: what each call needs, what each role grants, and the comparison.

Two tables, each row citing the Google page it comes from (as read in 2026; Google changes
predefined roles over time, see SECURITY.md):

* ``CALL_PERMISSIONS``: a recorded API call (``tests.support.google_calls``) or a use that the
  Terraform itself makes (a push subscription's OIDC identity, a secret environment variable)
  → the IAM permissions it needs.
* ``ROLE_PERMISSIONS``: a predefined role → its permissions in the service it is for. The
  generic permissions such roles also carry (``resourcemanager.projects.get``/``list``,
  ``orgpolicy.policy.get``) are left out: nothing here needs them, and listing them would let
  a role look "used" through a permission the project never exercises.

``compare`` holds grants (from the Terraform) against needs (from recorded calls and from the
Terraform resources that use an identity): every need covered by a role on the right
resource, every grant with at least one permission some need uses on that resource. The
tables live here, in the tests: no function reads them at run time, and the one place that
states a role's purpose in prose is docs/deploy.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Resource = tuple[str, str]  # (kind, canonical name), e.g. ("topic", "projects/p/topics/t")

FIRESTORE_IAM = (
    "https://cloud.google.com/firestore/docs/security/iam#required_permissions_for_api_methods"
)
PUBSUB_IAM = "https://cloud.google.com/pubsub/docs/access-control#required_permissions"
STORAGE_JSON_IAM = "https://cloud.google.com/storage/docs/access-control/iam-json"
STORAGE_RESUMABLE = "https://cloud.google.com/storage/docs/resumable-uploads#session-uris"
RUN_SECRETS = "https://cloud.google.com/run/docs/configuring/services/secrets#access-secret"
SECRET_ACCESS = "https://cloud.google.com/secret-manager/docs/access-control"  # noqa: S105  a documentation URL, not a secret
PUSH_AUTH = "https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions"
RUN_INVOKER = "https://cloud.google.com/run/docs/securing/managing-access"
SCHEDULER_AUTH = "https://cloud.google.com/scheduler/docs/http-target-auth"
DEAD_LETTER = "https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions"
BIGQUERY_SUBSCRIPTION = "https://cloud.google.com/pubsub/docs/create-bigquery-subscription#assign_bigquery_service_account"
BUILD_SA = "https://cloud.google.com/functions/docs/securing/build-custom-sa"
STORAGE_CMEK = "https://cloud.google.com/storage/docs/encryption/using-customer-managed-keys#service-agent-access"
ROLES_INDEX = "https://cloud.google.com/iam/docs/roles-permissions"


@dataclass(frozen=True)
class Permissions:
    permissions: frozenset[str]
    source: str  # the Google page that says so


def _p(source: str, *permissions: str) -> Permissions:
    return Permissions(frozenset(permissions), source)


# A recorded call (or a use the Terraform makes) → what it needs. A call without a row fails
# the check: a new kind of call must be looked up, not waved through.
CALL_PERMISSIONS: dict[str, Permissions] = {
    # Firestore, "Required permissions for API methods": a Commit needs what its writes need.
    "google.firestore.v1.Firestore/BatchGetDocuments": _p(FIRESTORE_IAM, "datastore.entities.get"),
    "google.firestore.v1.Firestore/RunQuery": _p(
        FIRESTORE_IAM, "datastore.entities.get", "datastore.entities.list"
    ),
    "google.firestore.v1.Firestore/Commit:create": _p(FIRESTORE_IAM, "datastore.entities.create"),
    # exists=true, or an update_time precondition (which only an existing document meets)
    "google.firestore.v1.Firestore/Commit:update": _p(FIRESTORE_IAM, "datastore.entities.update"),
    "google.firestore.v1.Firestore/Commit:upsert": _p(
        FIRESTORE_IAM, "datastore.entities.create", "datastore.entities.update"
    ),
    "google.firestore.v1.Firestore/Commit:delete": _p(FIRESTORE_IAM, "datastore.entities.delete"),
    # Pub/Sub, "Required permissions" (projects.topics.publish)
    "google.pubsub.v1.Publisher/Publish": _p(PUBSUB_IAM, "pubsub.topics.publish"),
    # Cloud Storage JSON API methods
    "storage.objects.get": _p(STORAGE_JSON_IAM, "storage.objects.get"),
    "storage.objects.list": _p(STORAGE_JSON_IAM, "storage.objects.list"),
    # insert with ifGenerationMatch=0 can only create; any other insert may replace an object,
    # which needs storage.objects.delete as well (the page's footnote on overwriting).
    "storage.objects.insert:ifGenerationMatch=0": _p(STORAGE_JSON_IAM, "storage.objects.create"),
    "storage.objects.insert:any": _p(
        STORAGE_JSON_IAM, "storage.objects.create", "storage.objects.delete"
    ),
    "storage.objects.delete": _p(STORAGE_JSON_IAM, "storage.objects.delete"),
    "storage.objects.patch": _p(STORAGE_JSON_IAM, "storage.objects.update"),
    "storage.objects.update": _p(STORAGE_JSON_IAM, "storage.objects.update"),
    "storage.buckets.get": _p(STORAGE_JSON_IAM, "storage.buckets.get"),
    # Requests on a resumable upload's session URI (chunks, the final request, a cancel):
    # "the session URI acts as an authentication token"; the permission was checked when the
    # session was started (storage.objects.insert above).
    "storage.resumableSession:PUT": _p(STORAGE_RESUMABLE),
    "storage.resumableSession:DELETE": _p(STORAGE_RESUMABLE),
    # Uses the Terraform makes (tests/support/iam_terraform.py), not recorded calls:
    "runtime: secret environment variable": _p(RUN_SECRETS, "secretmanager.versions.access"),
    "push: OIDC token of the push identity": _p(PUSH_AUTH, "iam.serviceAccounts.getOpenIdToken"),
    "push: invoke the Cloud Run service": _p(RUN_INVOKER, "run.routes.invoke"),
    "scheduler: invoke the Cloud Run service": _p(SCHEDULER_AUTH, "run.routes.invoke"),
    "public: invoke the Cloud Run service": _p(RUN_INVOKER, "run.routes.invoke"),
    "dead letter: forward to the dead-letter topic": _p(DEAD_LETTER, "pubsub.topics.publish"),
    "dead letter: acknowledge on the source subscription": _p(
        DEAD_LETTER, "pubsub.subscriptions.consume"
    ),
    "bigquery subscription: write rows": _p(
        BIGQUERY_SUBSCRIPTION, "bigquery.tables.get", "bigquery.tables.updateData"
    ),
    "build: write build logs": _p(BUILD_SA, "logging.logEntries.create"),
    "build: push the function image": _p(
        BUILD_SA,
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.repositories.downloadArtifacts",
    ),
    "build: read the source zip": _p(BUILD_SA, "storage.objects.get"),
    "cmek: encrypt and decrypt archive objects": _p(
        STORAGE_CMEK,
        "cloudkms.cryptoKeyVersions.useToEncrypt",
        "cloudkms.cryptoKeyVersions.useToDecrypt",
    ),
}

# Predefined roles → their permissions (see the module docstring for what is left out).
ROLE_PERMISSIONS: dict[str, Permissions] = {
    "roles/datastore.user": _p(
        f"{ROLES_INDEX}/firestore#datastore.user",
        "appengine.applications.get",
        "datastore.databases.get",
        "datastore.databases.getMetadata",
        "datastore.entities.allocateIds",
        "datastore.entities.create",
        "datastore.entities.delete",
        "datastore.entities.get",
        "datastore.entities.list",
        "datastore.entities.update",
        "datastore.indexes.list",
        "datastore.namespaces.get",
        "datastore.namespaces.list",
        "datastore.statistics.get",
        "datastore.statistics.list",
    ),
    "roles/pubsub.publisher": _p(f"{ROLES_INDEX}/pubsub#pubsub.publisher", "pubsub.topics.publish"),
    "roles/pubsub.subscriber": _p(
        f"{ROLES_INDEX}/pubsub#pubsub.subscriber",
        "pubsub.snapshots.seek",
        "pubsub.subscriptions.consume",
        "pubsub.topics.attachSubscription",
    ),
    "roles/storage.objectCreator": _p(
        f"{ROLES_INDEX}/storage#storage.objectCreator",
        "storage.managedFolders.create",
        "storage.multipartUploads.abort",
        "storage.multipartUploads.create",
        "storage.multipartUploads.listParts",
        "storage.objects.create",
    ),
    "roles/storage.objectViewer": _p(
        f"{ROLES_INDEX}/storage#storage.objectViewer",
        "storage.folders.get",
        "storage.folders.list",
        "storage.managedFolders.get",
        "storage.managedFolders.list",
        "storage.objects.get",
        "storage.objects.list",
    ),
    "roles/secretmanager.secretAccessor": _p(
        f"{ROLES_INDEX}/secretmanager#secretmanager.secretAccessor", "secretmanager.versions.access"
    ),
    "roles/run.invoker": _p(f"{ROLES_INDEX}/run#run.invoker", "run.routes.invoke"),
    "roles/iam.serviceAccountTokenCreator": _p(
        f"{ROLES_INDEX}/iam#iam.serviceAccountTokenCreator",
        "iam.serviceAccounts.getAccessToken",
        "iam.serviceAccounts.getOpenIdToken",
        "iam.serviceAccounts.implicitDelegation",
        "iam.serviceAccounts.signBlob",
        "iam.serviceAccounts.signJwt",
    ),
    "roles/logging.logWriter": _p(
        f"{ROLES_INDEX}/logging#logging.logWriter",
        "logging.logEntries.create",
        "logging.logEntries.route",
    ),
    "roles/artifactregistry.writer": _p(
        f"{ROLES_INDEX}/artifactregistry#artifactregistry.writer",
        "artifactregistry.dockerimages.get",
        "artifactregistry.dockerimages.list",
        "artifactregistry.files.get",
        "artifactregistry.files.list",
        "artifactregistry.packages.get",
        "artifactregistry.packages.list",
        "artifactregistry.repositories.downloadArtifacts",
        "artifactregistry.repositories.get",
        "artifactregistry.repositories.list",
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.tags.create",
        "artifactregistry.tags.get",
        "artifactregistry.tags.list",
        "artifactregistry.tags.update",
        "artifactregistry.versions.get",
        "artifactregistry.versions.list",
    ),
    "roles/cloudkms.cryptoKeyEncrypterDecrypter": _p(
        f"{ROLES_INDEX}/cloudkms#cloudkms.cryptoKeyEncrypterDecrypter",
        "cloudkms.cryptoKeyVersions.useToDecrypt",
        "cloudkms.cryptoKeyVersions.useToEncrypt",
    ),
    "roles/bigquery.dataEditor": _p(
        f"{ROLES_INDEX}/bigquery#bigquery.dataEditor",
        "bigquery.datasets.get",
        "bigquery.models.getData",
        "bigquery.routines.get",
        "bigquery.tables.create",
        "bigquery.tables.delete",
        "bigquery.tables.export",
        "bigquery.tables.get",
        "bigquery.tables.getData",
        "bigquery.tables.list",
        "bigquery.tables.update",
        "bigquery.tables.updateData",
    ),
}


@dataclass(frozen=True)
class Grant:
    """A role an identity holds on a resource (one ``*_iam_member`` of the Terraform)."""

    member: str  # identity key: "ingest", "push_invoker", "pubsub_agent", "allUsers", ...
    role: str
    resource: Resource
    source: str  # the Terraform address


@dataclass(frozen=True)
class Need:
    """Permissions an identity must have on a resource, and why."""

    member: str
    operation: str  # a key of CALL_PERMISSIONS
    resource: Resource
    because: str  # which function's recorded call, or which Terraform resource

    @property
    def permissions(self) -> frozenset[str]:
        return CALL_PERMISSIONS[self.operation].permissions


def _covers(grant: Grant, resource: Resource) -> bool:
    """A grant on the project covers every resource in it (one project per deployment)."""
    return grant.resource == resource or grant.resource[0] == "project"


def compare(
    grants: Iterable[Grant],
    needs: Iterable[Need],
    roles: Mapping[str, Permissions] = ROLE_PERMISSIONS,
) -> list[str]:
    """Every mismatch, one line each; empty when the grants are exactly what is used."""
    grants, needs = list(grants), list(needs)
    problems: list[str] = []
    for grant in grants:
        if grant.role not in roles:
            problems.append(f"{grant.source}: {grant.role} is not in ROLE_PERMISSIONS")
    for need in needs:
        if need.operation not in CALL_PERMISSIONS:
            problems.append(
                f"{need.member}: {need.operation} ({need.because}) has no row in CALL_PERMISSIONS"
            )
            continue
        held = set().union(
            *(
                roles[g.role].permissions
                for g in grants
                if g.member == need.member and g.role in roles and _covers(g, need.resource)
            )
        )
        missing = need.permissions - held
        if missing:
            problems.append(
                f"{need.member} lacks {', '.join(sorted(missing))} on {need.resource[0]} "
                f"{need.resource[1]} for {need.operation} ({need.because})"
            )
    for grant in grants:
        if grant.role not in roles:
            continue
        used = set().union(
            *(
                n.permissions
                for n in needs
                if n.member == grant.member
                and n.operation in CALL_PERMISSIONS
                and _covers(grant, n.resource)
            )
        )
        if not roles[grant.role].permissions & used:
            problems.append(
                f"{grant.member} holds {grant.role} on {grant.resource[0]} "
                f"{grant.resource[1]} ({grant.source}) and nothing uses it"
            )
    return problems


def used_by(
    grant: Grant, needs: Iterable[Need], roles: Mapping[str, Permissions] = ROLE_PERMISSIONS
) -> dict[str, list[str]]:
    """For a report: each permission of the grant's role that is used → the operations using it."""
    uses: dict[str, list[str]] = {}
    for need in needs:
        if need.member != grant.member or not _covers(grant, need.resource):
            continue
        for permission in sorted(need.permissions & roles[grant.role].permissions):
            uses.setdefault(permission, [])
            if need.operation not in uses[permission]:
                uses[permission].append(need.operation)
    return uses
