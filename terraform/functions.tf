# The four Cloud Functions (2nd gen), built from one zip of the repository.

# ---------------------------------------------------------------------------------------------
# Contract with the Python code (ttma_relay/settings.py, main.py). Checked from both sides:
# tests/integration/test_terraform_contract.py parses these maps (keep one `NAME = value` per line) and
# terraform/tests/*.tftest.hcl asserts the deployed functions use them.
#   *_env         -> service_config.environment_variables
#   *_secret_env  -> service_config.secret_environment_variables (Secret Manager references)
# The keys of <fn>_env + <fn>_secret_env are exactly settings.INGEST_ENV / ARCHIVE_ENV /
# RECONCILE_ENV. TTMA_WEBHOOK_SECRET_PREVIOUS is injected only while
# var.secrets.webhook_secret_previous_version is set (the code treats it as optional).
# The plain values use variables and locals only, never resource attributes (the topic is
# local.call_events_topic, not google_pubsub_topic.call_events.name), so that `terraform
# console` can evaluate them without state: scripts/deploy_artifact_proof.py serves the built
# zip with exactly these values. The function resource depends on the topic and the bucket
# explicitly instead.
# ---------------------------------------------------------------------------------------------

locals {
  entry_points = {
    ingest             = "ingest"
    archive_transcript = "archive_transcript"
    archive_recording  = "archive_recording"
    reconcile          = "reconcile"
  }

  ingest_env = {
    GOOGLE_CLOUD_PROJECT             = var.project_id
    TTMA_SIGNATURE_TOLERANCE_SECONDS = tostring(var.signature_tolerance_seconds)
    CALL_EVENTS_TOPIC                = local.call_events_topic
    FIRESTORE_DATABASE               = local.firestore_database
    DELIVERIES_COLLECTION            = var.deliveries_collection
    DELIVERY_TTL_DAYS                = tostring(var.delivery_ttl_days)
    MAX_BODY_BYTES                   = tostring(var.max_body_bytes)
    INGEST_BUDGET_SECONDS            = tostring(var.ingest_budget_seconds)
  }

  ingest_secret_env = {
    TTMA_WEBHOOK_SECRET          = { secret = google_secret_manager_secret.webhook.secret_id, version = var.secrets.webhook_secret_version }
    TTMA_WEBHOOK_SECRET_PREVIOUS = { secret = google_secret_manager_secret.webhook.secret_id, version = var.secrets.webhook_secret_previous_version }
  }

  archive_env = {
    GOOGLE_CLOUD_PROJECT   = var.project_id
    FIRESTORE_DATABASE     = local.firestore_database
    CALLS_COLLECTION       = var.calls_collection
    DELIVERIES_COLLECTION  = var.deliveries_collection # forget's tombstones
    ARCHIVE_BUCKET         = local.archive_bucket
    TTMA_API_BASE_URL      = var.ttma_api_base_url
    RECORDING_WAIT_SECONDS = tostring(var.recording_wait_seconds)
    # The index keeps a call as long as the bucket keeps its objects (0: forever).
    CALL_RETENTION_DAYS = tostring(var.archive.delete_after_days)
  }

  archive_secret_env = {
    TTMA_API_KEY        = { secret = google_secret_manager_secret.api_key.secret_id, version = var.secrets.api_key_version }
    TTMA_PHONE_HASH_KEY = { secret = google_secret_manager_secret.phone_hash_key.secret_id, version = var.secrets.phone_hash_key_version }
  }

  reconcile_env = {
    GOOGLE_CLOUD_PROJECT     = var.project_id
    CALL_EVENTS_TOPIC        = local.call_events_topic
    FIRESTORE_DATABASE       = local.firestore_database
    DELIVERIES_COLLECTION    = var.deliveries_collection
    DELIVERY_TTL_DAYS        = tostring(var.delivery_ttl_days)
    TTMA_API_BASE_URL        = var.ttma_api_base_url
    RECONCILE_LOOKBACK_HOURS = tostring(var.reconcile_lookback_hours)
    RECONCILE_GRACE_SECONDS  = tostring(var.reconcile_grace_seconds)
  }

  reconcile_secret_env = {
    TTMA_API_KEY = { secret = google_secret_manager_secret.api_key.secret_id, version = var.secrets.api_key_version }
  }

  # ---- per-function deployment settings -----------------------------------------------------

  # Requests one instance serves at once (Cloud Run's max_instance_request_concurrency), and the
  # functions-framework server's thread count (THREADS; its default is 4 x CPUs, which would
  # queue 16 of ingest's 20 concurrent webhooks behind 4 threads on one CPU).
  concurrency = {
    ingest             = 20
    archive_transcript = 10
    archive_recording  = 4
    reconcile          = 1
  }

  functions = {
    ingest = {
      name          = "${local.prefix}-ingest"
      description   = "Verifies TTMA webhook signatures, de-duplicates deliveries and publishes call events."
      ingress       = "ALLOW_ALL" # public: the HMAC signature is the authentication
      env           = merge(local.ingest_env, { THREADS = tostring(local.concurrency.ingest) })
      secret_env    = local.ingest_secret_env
      timeout       = 60
      max_instances = var.scaling.ingest_max_instances
      min_instances = var.scaling.ingest_min_instances
      concurrency   = local.concurrency.ingest
    }
    archive_transcript = {
      name          = "${local.prefix}-archive-transcript"
      description   = "Archives call.json and the transcript to Cloud Storage and indexes the call in Firestore."
      ingress       = "ALLOW_INTERNAL_ONLY"
      env           = merge(local.archive_env, { THREADS = tostring(local.concurrency.archive_transcript) })
      secret_env    = local.archive_secret_env
      timeout       = local.subscriber_functions.archive_transcript.ack_deadline_seconds
      max_instances = var.scaling.subscriber_max_instances
      min_instances = 0
      concurrency   = local.concurrency.archive_transcript
    }
    archive_recording = {
      name          = "${local.prefix}-archive-recording"
      description   = "Streams the call recording from the TTMA API to Cloud Storage."
      ingress       = "ALLOW_INTERNAL_ONLY"
      env           = merge(local.archive_env, { THREADS = tostring(local.concurrency.archive_recording) })
      secret_env    = local.archive_secret_env
      timeout       = local.subscriber_functions.archive_recording.ack_deadline_seconds
      max_instances = var.scaling.subscriber_max_instances
      min_instances = 0
      concurrency   = local.concurrency.archive_recording
    }
    reconcile = {
      name          = "${local.prefix}-reconcile"
      description   = "Publishes calls the webhook never delivered (listed from the TTMA API)."
      ingress       = "ALLOW_INTERNAL_ONLY"
      env           = merge(local.reconcile_env, { THREADS = tostring(local.concurrency.reconcile) })
      secret_env    = local.reconcile_secret_env
      timeout       = 540
      max_instances = 1
      min_instances = 0
      concurrency   = local.concurrency.reconcile
    }
  }

  source_dir = coalesce(var.function_source_dir, abspath("${path.module}/.."))

  # Only main.py, requirements.txt and the runtime packages (verify/, handlers/, ttma_relay/) are
  # deployed. Top-level files other than main.py / requirements.txt are excluded by listing them;
  # top-level directories that are not runtime packages must be listed below
  # (tests/integration/test_terraform_contract.py fails when a new one is not).
  #
  # archive_file (hashicorp/archive >= 2.5, ZipArchiver.ArchiveDir) matches every path of its
  # walk, relative to source_dir, against each exclude with doublestar.PathMatch, the root "."
  # included: a matching directory is skipped whole. So no pattern may match "." (".*" does,
  # and the provider then stops with "archive has not been created as it would be empty");
  # ".?*" needs a character after the dot.
  source_excluded_dirs = [
    "bench",
    "build",
    "devstack",
    "docs",
    "examples",
    "scripts",
    "terraform",
    "tests",
    "ttma_sandbox",
    "ttma_relay/cli", # the operator CLI (click, tqdm): no function imports it
    "*.egg-info",
  ]
  source_excludes = concat(
    local.source_excluded_dirs,
    [for f in fileset(local.source_dir, "*") : f if !contains(["main.py", "requirements.txt"], f)],
    [
      "**/.?*", # hidden files and directories at any depth: .git, .venv, .ci, .devstack, caches
      "**/__pycache__",
      "**/*.pyc",
    ],
  )

  # Every file in the zip gets this mode: the zip (and so its hash, the source object's name and
  # every function's build) does not depend on the umask or file system of the machine that runs
  # terraform.
  source_file_mode = "0644"
}

# scripts/deploy_artifact_proof.py builds this zip the same way (the same excludes, through a
# replay of this walk), installs its requirements.txt on Python 3.12 and serves the four
# functions from it with these locals' environment, end to end on the emulators.
data "archive_file" "source" {
  type             = "zip"
  source_dir       = local.source_dir
  excludes         = local.source_excludes
  output_file_mode = local.source_file_mode
  output_path      = "${path.module}/.build/function-source.zip"
  # exclude_symlink_directories stays unset (false): from 2.4.2 the provider answers a
  # symlinked directory with filepath.SkipDir, which skips the rest of its parent directory.
  # The repository holds no symlinks (tests/integration/test_terraform_contract.py checks the zip's files).
}

# The object name carries the zip's content hash: a code change uploads a new object, which
# changes every function's build source and redeploys them.
resource "google_storage_bucket_object" "source" {
  bucket       = google_storage_bucket.source.name
  name         = "functions/source-${data.archive_file.source.output_sha256}.zip"
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}

resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84:Holds only the function images built from this repository's public code; Google-managed encryption.
  project       = var.project_id
  location      = var.region
  repository_id = "${local.prefix}-functions"
  description   = "Images of the TTMA relay functions."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "this" {
  # checkov:skip=CKV_GCP_124:Only ingest uses ALLOW_ALL (the vendor posts webhooks from the internet, authenticated by their HMAC signature); the other three are ALLOW_INTERNAL_ONLY, asserted in tests/security.tftest.hcl.
  for_each = var.deploy_functions ? local.functions : {}

  project     = var.project_id
  location    = var.region
  name        = each.value.name
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = "python312"
    entry_point       = local.entry_points[each.key]
    service_account   = google_service_account.this["build"].id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.this[each.key].email
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = "512Mi"
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    max_instance_count               = each.value.max_instances
    min_instance_count               = each.value.min_instances
    max_instance_request_concurrency = each.value.concurrency
    environment_variables            = each.value.env

    dynamic "secret_environment_variables" {
      for_each = { for name, ref in each.value.secret_env : name => ref if ref.version != null }
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  # Every grant a function starts with, plus the time IAM needs to apply them (iam.tf).
  depends_on = [
    google_project_service.apis,
    time_sleep.iam_propagation,
    # The environment names them through locals (see the top of this file).
    google_pubsub_topic.call_events,
    google_storage_bucket.archive,
  ]
}
