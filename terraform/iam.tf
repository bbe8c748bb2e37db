# One service account per function, plus the identities that invoke them and build them.
# Every grant is on the resource it concerns (topic, bucket, secret, service); the only
# project-level grants are Firestore access (conditioned on this database) and log writing
# for the build account, which have no narrower resource to attach to.

locals {
  service_accounts = {
    ingest             = { id = "${local.prefix}-fn-ingest", name = "TTMA ingest function" }
    archive_transcript = { id = "${local.prefix}-fn-transcript", name = "TTMA archive_transcript function" }
    archive_recording  = { id = "${local.prefix}-fn-recording", name = "TTMA archive_recording function" }
    reconcile          = { id = "${local.prefix}-fn-reconcile", name = "TTMA reconcile function" }
    push_invoker       = { id = "${local.prefix}-push-invoker", name = "TTMA Pub/Sub push to the archivers (OIDC)" }
    scheduler          = { id = "${local.prefix}-scheduler", name = "TTMA Cloud Scheduler to reconcile (OIDC)" }
    consumer_push      = { id = "${local.prefix}-consumer-push", name = "TTMA Pub/Sub push to consumers (OIDC, no roles)" }
    build              = { id = "${local.prefix}-build", name = "TTMA function builds (Cloud Build)" }
  }

  # Functions that read or write Firestore (database-scoped by an IAM condition).
  firestore_users = toset(["ingest", "archive_transcript", "archive_recording", "reconcile"])
  # Functions that publish call events.
  topic_publishers = toset(["ingest", "reconcile"])
  # Functions that write the archive (create + read only: no delete, no overwrite).
  archive_writers = toset(["archive_transcript", "archive_recording"])
  archive_roles   = toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])
  # Functions that call the TTMA API.
  api_key_readers = toset(["archive_transcript", "archive_recording", "reconcile"])
  # Functions that write the index's phone-number hashes (TTMA_PHONE_HASH_KEY).
  phone_hash_key_readers = toset(["archive_transcript", "archive_recording"])
}

resource "google_service_account" "this" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = each.value.id
  display_name = each.value.name

  depends_on = [google_project_service.apis]
}

# --- Firestore: datastore.user restricted to this database ------------------------------------

resource "google_project_iam_member" "firestore_user" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.this[each.key].member

  condition {
    title       = "only-${replace(local.firestore_database, "/[()]/", "")}-database"
    description = "Firestore access limited to the pipeline's database"
    expression  = "resource.name == \"${local.firestore_resource}\""
  }
}

# --- Pub/Sub --------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_publishers

  project = var.project_id
  topic   = google_pubsub_topic.call_events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.this[each.key].member
}

# The Pub/Sub service agent forwards undeliverable messages to the dead-letter topic ...
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent

  depends_on = [time_sleep.pubsub_agent]
}

# ... acknowledges them on the source subscription ...
resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.dead_lettered_subscriptions

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent

  depends_on = [time_sleep.pubsub_agent]
}

# ... and mints the OIDC tokens of the push identities that a subscription uses: the push
# invoker's once the archivers' subscriptions exist, the consumers' identity's once a consumer
# does (tests/integration/test_least_privilege.py: no grant without a use).
resource "google_service_account_iam_member" "pubsub_token_creator" {
  for_each = toset(concat(
    var.deploy_functions ? ["push_invoker"] : [],
    length(var.consumers) > 0 ? ["consumer_push"] : [],
  ))

  service_account_id = google_service_account.this[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent

  depends_on = [time_sleep.pubsub_agent]
}

# --- Cloud Storage --------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "archive_writer" {
  for_each = { for pair in setproduct(local.archive_writers, local.archive_roles) : "${pair[0]}/${pair[1]}" => { fn = pair[0], role = pair[1] } }

  bucket = google_storage_bucket.archive.name
  role   = each.value.role
  member = google_service_account.this[each.value.fn].member
}

resource "google_storage_bucket_iam_member" "source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.this["build"].member
}

resource "google_kms_crypto_key_iam_member" "archive_cmek" {
  count = var.archive.kms_key_name == null ? 0 : 1

  crypto_key_id = var.archive.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.storage_agent
}

# --- Secret Manager -------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "webhook_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.webhook.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this["ingest"].member
}

resource "google_secret_manager_secret_iam_member" "api_key" {
  for_each = local.api_key_readers

  project   = var.project_id
  secret_id = google_secret_manager_secret.api_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this[each.key].member
}

resource "google_secret_manager_secret_iam_member" "phone_hash_key" {
  for_each = local.phone_hash_key_readers

  project   = var.project_id
  secret_id = google_secret_manager_secret.phone_hash_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this[each.key].member
}

# --- Build ----------------------------------------------------------------------------------

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.this["build"].member
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.this["build"].member
}

# --- Invocation -----------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "push_invoker" {
  for_each = var.deploy_functions ? local.subscriber_functions : {}

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.this["push_invoker"].member
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  count = var.deploy_functions ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["reconcile"].name
  role     = "roles/run.invoker"
  member   = google_service_account.this["scheduler"].member
}

resource "google_cloud_run_service_iam_member" "ingest_public" {
  # checkov:skip=CKV_GCP_102:The vendor's webhook cannot send Google credentials; every request is authenticated by its HMAC signature (verify/), and unsigned requests get 401 before any side effect.
  count = var.deploy_functions ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["ingest"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- Propagation ----------------------------------------------------------------------------

# IAM is eventually consistent: a new grant can take a minute or more to take effect. A function
# instance that cannot read its secret at start-up aborts and its deployment fails, so the
# functions wait until the grants they start with have had time to propagate. The sleep runs
# again whenever one of those grants is replaced.
resource "time_sleep" "iam_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    grants = sha1(jsonencode(concat(
      [google_secret_manager_secret_iam_member.webhook_secret.id],
      [for g in google_secret_manager_secret_iam_member.api_key : g.id],
      [for g in google_secret_manager_secret_iam_member.phone_hash_key : g.id],
      [for g in google_project_iam_member.firestore_user : g.id],
      [for g in google_pubsub_topic_iam_member.publisher : g.id],
      [for g in google_storage_bucket_iam_member.archive_writer : g.id],
      [
        google_project_iam_member.build_log_writer.id,
        google_artifact_registry_repository_iam_member.build_writer.id,
        google_storage_bucket_iam_member.source_reader.id,
      ],
    )))
  }
}

# The Pub/Sub service agent is created by Google when the Pub/Sub API is enabled, but it is not
# always visible to IAM at once on a fresh project: grants to it wait for the API, the topics and
# a short pause (nothing to wait for when the APIs are managed outside this module).
resource "time_sleep" "pubsub_agent" {
  create_duration = var.enable_apis ? "${var.iam_propagation_seconds}s" : "0s"

  depends_on = [google_project_service.apis, google_pubsub_topic.call_events, google_pubsub_topic.dead_letter]
}
