# Security and contract properties of the module, checked offline with mock providers
# (`terraform test`, or tf-offline validate which runs it).

mock_provider "google" {
  source = "./tests/mocks"
}

mock_provider "time" {}

mock_provider "archive" {
  source = "./tests/mocks"
}

variables {
  project_id = "ttma-test-project"
  region     = "europe-west1"

  # The environment variable names each function reads, exactly as ttma_relay/settings.py
  # defines INGEST_ENV / ARCHIVE_ENV / RECONCILE_ENV / SECRET_ENV (THREADS, read by the
  # functions-framework server and not by the code, is left out of the comparisons).
  # tests/integration/test_terraform_contract.py checks these lists against the Python settings.
  expected_ingest_env    = ["CALL_EVENTS_TOPIC", "DELIVERIES_COLLECTION", "DELIVERY_TTL_DAYS", "FIRESTORE_DATABASE", "GOOGLE_CLOUD_PROJECT", "INGEST_BUDGET_SECONDS", "MAX_BODY_BYTES", "TTMA_SIGNATURE_TOLERANCE_SECONDS", "TTMA_WEBHOOK_SECRET", "TTMA_WEBHOOK_SECRET_PREVIOUS"]
  expected_archive_env   = ["ARCHIVE_BUCKET", "CALLS_COLLECTION", "CALL_RETENTION_DAYS", "DELIVERIES_COLLECTION", "FIRESTORE_DATABASE", "GOOGLE_CLOUD_PROJECT", "RECORDING_WAIT_SECONDS", "TTMA_API_BASE_URL", "TTMA_API_KEY", "TTMA_PHONE_HASH_KEY"]
  expected_reconcile_env = ["CALL_EVENTS_TOPIC", "DELIVERIES_COLLECTION", "DELIVERY_TTL_DAYS", "FIRESTORE_DATABASE", "GOOGLE_CLOUD_PROJECT", "RECONCILE_GRACE_SECONDS", "RECONCILE_LOOKBACK_HOURS", "TTMA_API_BASE_URL", "TTMA_API_KEY"]
  expected_secret_env    = ["TTMA_API_KEY", "TTMA_PHONE_HASH_KEY", "TTMA_WEBHOOK_SECRET", "TTMA_WEBHOOK_SECRET_PREVIOUS"]
  primitive_roles        = ["roles/owner", "roles/editor", "roles/viewer"]
}

run "defaults" {
  command = apply

  # --- buckets are private --------------------------------------------------------------------
  assert {
    condition = alltrue([for b in [google_storage_bucket.archive, google_storage_bucket.source] :
    b.uniform_bucket_level_access == true && b.public_access_prevention == "enforced" && b.versioning[0].enabled == true])
    error_message = "Buckets must have uniform access, enforced public access prevention and versioning."
  }

  assert {
    condition     = google_storage_bucket.archive.force_destroy == false && length(google_storage_bucket.archive.lifecycle_rule) > 0
    error_message = "The archive bucket must not be force-destroyable by default and must carry lifecycle rules."
  }

  # --- every push subscription: OIDC, retry back-off, dead-letter policy -----------------------
  assert {
    condition = alltrue([for s in google_pubsub_subscription.function_push :
      try(s.push_config[0].oidc_token[0].service_account_email == google_service_account.this["push_invoker"].email, false) &&
      try(s.dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.dead_letter.id, false) &&
      try(s.dead_letter_policy[0].max_delivery_attempts >= 5, false) &&
      length(s.retry_policy) == 1
    ])
    error_message = "Every subscriber push subscription needs an OIDC token from the push invoker, a retry policy and a dead-letter policy."
  }

  assert {
    condition     = toset(keys(google_pubsub_subscription.function_push)) == toset(["archive_transcript", "archive_recording"])
    error_message = "There must be exactly one push subscription per subscriber function."
  }

  assert {
    condition = alltrue([for k, s in google_pubsub_subscription.function_push :
    s.push_config[0].push_endpoint == google_cloudfunctions2_function.this[k].service_config[0].uri])
    error_message = "Each subscriber push subscription must target its own function."
  }

  assert {
    condition     = google_pubsub_subscription.dead_letter_hold.topic == google_pubsub_topic.dead_letter.id && google_pubsub_subscription.dead_letter_hold.retain_acked_messages == true
    error_message = "Dead letters must be kept by a pull subscription on the dead-letter topic."
  }

  assert {
    condition = toset([for m in google_pubsub_subscription_iam_member.dead_letter_subscriber : m.subscription]) == toset([for s in google_pubsub_subscription.function_push : s.name]) && alltrue([for m in google_pubsub_subscription_iam_member.dead_letter_subscriber :
    m.role == "roles/pubsub.subscriber" && m.member == "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"])
    error_message = "The Pub/Sub service agent needs roles/pubsub.subscriber on every dead-lettered subscription."
  }

  assert {
    condition     = google_pubsub_topic_iam_member.dead_letter_publisher.role == "roles/pubsub.publisher" && google_pubsub_topic_iam_member.dead_letter_publisher.topic == google_pubsub_topic.dead_letter.name
    error_message = "The Pub/Sub service agent needs roles/pubsub.publisher on the dead-letter topic."
  }

  assert {
    condition     = length(google_pubsub_subscription.bigquery) == 0 && length(google_pubsub_subscription.consumer_push) == 0
    error_message = "The BigQuery subscription and consumers are off by default."
  }

  # --- ingest public, everything else internal and invoked only by its own identity -----------
  assert {
    condition     = google_cloudfunctions2_function.this["ingest"].service_config[0].ingress_settings == "ALLOW_ALL"
    error_message = "ingest must accept the vendor's webhooks from the internet."
  }

  assert {
    condition     = google_cloud_run_service_iam_member.ingest_public[0].member == "allUsers" && google_cloud_run_service_iam_member.ingest_public[0].role == "roles/run.invoker" && google_cloud_run_service_iam_member.ingest_public[0].service == google_cloudfunctions2_function.this["ingest"].name
    error_message = "ingest must be invocable by allUsers (the signature is the authentication)."
  }

  assert {
    condition = alltrue([for k in ["archive_transcript", "archive_recording", "reconcile"] :
    google_cloudfunctions2_function.this[k].service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"])
    error_message = "The archivers and reconcile must use internal-only ingress."
  }

  assert {
    condition = alltrue(concat(
      [for m in google_cloud_run_service_iam_member.push_invoker : m.member == google_service_account.this["push_invoker"].member && m.role == "roles/run.invoker"],
      [google_cloud_run_service_iam_member.scheduler_invoker[0].member == google_service_account.this["scheduler"].member],
      [google_cloud_run_service_iam_member.scheduler_invoker[0].service == google_cloudfunctions2_function.this["reconcile"].name],
    ))
    error_message = "The archivers are invoked only by the push invoker, reconcile only by the scheduler account."
  }

  assert {
    condition = alltrue([for m in concat(values(google_cloud_run_service_iam_member.push_invoker), google_cloud_run_service_iam_member.scheduler_invoker) :
    !contains(["allUsers", "allAuthenticatedUsers"], m.member)])
    error_message = "The archivers and reconcile must not be public."
  }

  assert {
    condition     = google_cloud_scheduler_job.reconcile[0].http_target[0].oidc_token[0].service_account_email == google_service_account.this["scheduler"].email
    error_message = "Cloud Scheduler must call reconcile with an OIDC token of the scheduler account."
  }

  # --- least privilege ---------------------------------------------------------------------------
  assert {
    condition = alltrue([for r in concat(
      [for m in google_project_iam_member.firestore_user : m.role],
      [google_project_iam_member.build_log_writer.role],
      [for m in google_pubsub_topic_iam_member.publisher : m.role],
      [google_pubsub_topic_iam_member.dead_letter_publisher.role],
      [for m in google_pubsub_subscription_iam_member.dead_letter_subscriber : m.role],
      [for m in google_service_account_iam_member.pubsub_token_creator : m.role],
      [for m in google_storage_bucket_iam_member.archive_writer : m.role],
      [google_storage_bucket_iam_member.source_reader.role],
      [google_secret_manager_secret_iam_member.webhook_secret.role],
      [for m in google_secret_manager_secret_iam_member.api_key : m.role],
      [for m in google_secret_manager_secret_iam_member.phone_hash_key : m.role],
      [google_artifact_registry_repository_iam_member.build_writer.role],
      [for m in google_cloud_run_service_iam_member.push_invoker : m.role],
      [google_cloud_run_service_iam_member.scheduler_invoker[0].role, google_cloud_run_service_iam_member.ingest_public[0].role],
    ) : !contains(var.primitive_roles, r)])
    error_message = "No primitive role (owner/editor/viewer) may be granted."
  }

  assert {
    condition = alltrue([for m in google_project_iam_member.firestore_user :
    m.role == "roles/datastore.user" && m.condition[0].expression == "resource.name == \"projects/ttma-test-project/databases/(default)\""])
    error_message = "Firestore access must be granted only on the pipeline's database (IAM condition)."
  }

  assert {
    condition     = toset([for m in google_storage_bucket_iam_member.archive_writer : m.role]) == toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])
    error_message = "The archivers may create and read archive objects, never delete or overwrite them."
  }

  assert {
    condition     = keys(google_service_account_iam_member.pubsub_token_creator) == ["push_invoker"]
    error_message = "Without consumers the Pub/Sub agent mints tokens for the push invoker only."
  }

  assert {
    condition     = length(distinct([for k in keys(google_cloudfunctions2_function.this) : google_cloudfunctions2_function.this[k].service_config[0].service_account_email])) == 4
    error_message = "Each function must run as its own service account."
  }

  assert {
    condition     = google_secret_manager_secret_iam_member.webhook_secret.member == google_service_account.this["ingest"].member && toset(keys(google_secret_manager_secret_iam_member.api_key)) == toset(["archive_transcript", "archive_recording", "reconcile"]) && toset(keys(google_secret_manager_secret_iam_member.phone_hash_key)) == toset(["archive_transcript", "archive_recording"])
    error_message = "Only ingest reads the webhook secret; only the archivers and reconcile read the API key; only the archivers read the phone hash key."
  }

  # --- secrets by reference, env names = the settings the code reads --------------------------
  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.this :
    length(setintersection(toset(keys(f.service_config[0].environment_variables)), toset(var.expected_secret_env))) == 0])
    error_message = "Secrets must never be plain environment variables."
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.this : alltrue([for s in f.service_config[0].secret_environment_variables :
    contains(var.expected_secret_env, s.key) && contains([google_secret_manager_secret.webhook.secret_id, google_secret_manager_secret.api_key.secret_id, google_secret_manager_secret.phone_hash_key.secret_id], s.secret) && s.version != "" && s.project_id == "ttma-test-project"])])
    error_message = "Secret environment variables must reference the module's Secret Manager secrets."
  }

  assert {
    condition     = [for s in google_cloudfunctions2_function.this["ingest"].service_config[0].secret_environment_variables : "${s.key}=${s.secret}:${s.version}"] == ["TTMA_WEBHOOK_SECRET=ttma-webhook-secret:1"]
    error_message = "By default ingest gets only the current webhook secret, pinned to version 1."
  }

  assert {
    condition     = toset(concat([for n in keys(google_cloudfunctions2_function.this["ingest"].service_config[0].environment_variables) : n if n != "THREADS"], [for s in google_cloudfunctions2_function.this["ingest"].service_config[0].secret_environment_variables : s.key])) == setsubtract(toset(var.expected_ingest_env), ["TTMA_WEBHOOK_SECRET_PREVIOUS"])
    error_message = "ingest's environment must be exactly INGEST_ENV (minus the optional previous secret)."
  }

  assert {
    condition = alltrue([for k in ["archive_transcript", "archive_recording"] :
    toset(concat([for n in keys(google_cloudfunctions2_function.this[k].service_config[0].environment_variables) : n if n != "THREADS"], [for s in google_cloudfunctions2_function.this[k].service_config[0].secret_environment_variables : s.key])) == toset(var.expected_archive_env)])
    error_message = "The archivers' environment must be exactly ARCHIVE_ENV."
  }

  assert {
    condition     = toset(concat([for n in keys(google_cloudfunctions2_function.this["reconcile"].service_config[0].environment_variables) : n if n != "THREADS"], [for s in google_cloudfunctions2_function.this["reconcile"].service_config[0].secret_environment_variables : s.key])) == toset(var.expected_reconcile_env)
    error_message = "reconcile's environment must be exactly RECONCILE_ENV."
  }

  assert {
    condition     = google_cloudfunctions2_function.this["ingest"].service_config[0].environment_variables["CALL_EVENTS_TOPIC"] == google_pubsub_topic.call_events.name && google_pubsub_topic.call_events.name == "ttma-call-events" && google_cloudfunctions2_function.this["archive_recording"].service_config[0].environment_variables["ARCHIVE_BUCKET"] == google_storage_bucket.archive.name
    error_message = "Functions must be wired to the module's topic and bucket."
  }

  # --- entry points, runtime, source ------------------------------------------------------------
  assert {
    condition = alltrue([for k, f in google_cloudfunctions2_function.this :
    f.build_config[0].entry_point == k && f.build_config[0].runtime == "python312" && f.build_config[0].service_account == google_service_account.this["build"].id])
    error_message = "Each function runs python312 with its entry point and builds with the dedicated build account."
  }

  assert {
    condition = google_storage_bucket_object.source.name == "functions/source-0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0.zip" && alltrue([for f in google_cloudfunctions2_function.this :
    f.build_config[0].source[0].storage_source[0].object == google_storage_bucket_object.source.name])
    error_message = "The source object name must carry the zip's content hash so code changes redeploy."
  }

  assert {
    condition     = alltrue([for d in ["tests", "bench", "devstack", "docs", "examples", "terraform", "**/.?*"] : contains(data.archive_file.source.excludes, d)])
    error_message = "Tests and dev tools must be excluded from the function source zip."
  }

  assert {
    # archive_file matches the walk's root "." against the excludes too: ".*" would skip it all.
    condition     = !contains(data.archive_file.source.excludes, ".*") && data.archive_file.source.output_file_mode == "0644"
    error_message = "No exclude may match \".\" (the zip would be empty), and every file in it gets mode 0644."
  }

  # --- Firestore TTL, monitoring ----------------------------------------------------------------
  assert {
    condition     = google_firestore_field.delivery_ttl.field == "expireAt" && google_firestore_field.delivery_ttl.collection == "ttma_deliveries" && length(google_firestore_field.delivery_ttl.ttl_config) == 1 && google_firestore_database.this[0].type == "FIRESTORE_NATIVE"
    error_message = "A Firestore native database with a TTL policy on deliveries' expireAt is required."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.dead_letters.conditions[0].condition_threshold[0].filter, google_pubsub_subscription.dead_letter_hold.name) && strcontains(google_monitoring_alert_policy.ingest_5xx.conditions[0].condition_threshold[0].filter, "5xx")
    error_message = "Alerts must watch the dead-letter backlog and the ingest 5xx rate."
  }
}

run "rotation_consumers_bigquery" {
  command = apply

  variables {
    secrets = {
      webhook_secret_version          = "3"
      webhook_secret_previous_version = "2"
    }
    bigquery_subscription_enabled = true
    consumers = {
      n8n = {
        push_endpoint = "https://n8n.example.com/webhook/ttma"
        filter        = "attributes.endedReason = \"callerHangup\""
      }
      crm = {
        push_endpoint         = "https://crm.example.com/hooks/ttma"
        max_delivery_attempts = 20
      }
    }
  }

  assert {
    condition     = toset(keys(google_service_account_iam_member.pubsub_token_creator)) == toset(["push_invoker", "consumer_push"])
    error_message = "With consumers the Pub/Sub agent also mints the consumers' push tokens."
  }

  assert {
    condition     = [for s in google_cloudfunctions2_function.this["ingest"].service_config[0].secret_environment_variables : "${s.key}=${s.secret}:${s.version}"] == ["TTMA_WEBHOOK_SECRET=ttma-webhook-secret:3", "TTMA_WEBHOOK_SECRET_PREVIOUS=ttma-webhook-secret:2"]
    error_message = "During a rotation ingest gets the current and the previous secret versions."
  }

  assert {
    condition     = toset(concat([for n in keys(google_cloudfunctions2_function.this["ingest"].service_config[0].environment_variables) : n if n != "THREADS"], [for s in google_cloudfunctions2_function.this["ingest"].service_config[0].secret_environment_variables : s.key])) == toset(var.expected_ingest_env)
    error_message = "With the previous secret injected, ingest's environment must be exactly INGEST_ENV."
  }

  assert {
    condition = alltrue([for s in google_pubsub_subscription.consumer_push :
      try(s.push_config[0].oidc_token[0].service_account_email == google_service_account.this["consumer_push"].email, false) &&
      try(s.push_config[0].oidc_token[0].audience == s.push_config[0].push_endpoint, false) &&
      try(s.push_config[0].no_wrapper[0].write_metadata == true, false) &&
      try(s.dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.dead_letter.id, false) &&
      length(s.retry_policy) == 1
    ])
    error_message = "Every consumer push subscription needs OIDC, unwrapped delivery with metadata, a retry policy and a dead-letter policy."
  }

  assert {
    condition     = google_pubsub_subscription.consumer_push["n8n"].filter == "attributes.endedReason = \"callerHangup\"" && google_pubsub_subscription.consumer_push["crm"].dead_letter_policy[0].max_delivery_attempts == 20
    error_message = "Consumer filters and delivery attempts must be applied."
  }

  assert {
    condition     = length(google_pubsub_subscription.bigquery) == 1 && google_pubsub_subscription.bigquery[0].bigquery_config[0].write_metadata == true && length(google_pubsub_subscription.bigquery[0].dead_letter_policy) == 1
    error_message = "The optional BigQuery subscription writes metadata and has a dead-letter policy."
  }

  assert {
    condition     = length(google_pubsub_subscription_iam_member.dead_letter_subscriber) == 5
    error_message = "The Pub/Sub service agent needs roles/pubsub.subscriber on both function subscriptions, both consumers and the BigQuery subscription."
  }

  assert {
    condition     = !contains(["roles/owner", "roles/editor", "roles/viewer"], google_bigquery_table_iam_member.pubsub_writer[0].role)
    error_message = "No primitive role on the BigQuery table."
  }
}

run "existing_firestore_and_cmek" {
  command = apply # the Cloud Storage agent's data source is read at apply (it waits for the APIs)

  variables {
    create_firestore_database = false
    firestore_database        = "ttma"
    archive = {
      kms_key_name   = "projects/kms-project/locations/europe-west1/keyRings/ring/cryptoKeys/archive"
      retention_days = 365
    }
  }

  assert {
    condition     = length(google_firestore_database.this) == 0 && google_firestore_field.delivery_ttl.database == "ttma"
    error_message = "An existing database is used, not created, and still gets the TTL policy."
  }

  assert {
    condition     = google_storage_bucket.archive.encryption[0].default_kms_key_name == "projects/kms-project/locations/europe-west1/keyRings/ring/cryptoKeys/archive" && google_kms_crypto_key_iam_member.archive_cmek[0].member == "serviceAccount:service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
    error_message = "CMEK must be set on the archive bucket and the Cloud Storage agent granted on the key."
  }

  assert {
    condition     = tostring(google_storage_bucket.archive.retention_policy[0].retention_period) == "31536000"
    error_message = "The retention policy must be configurable in days."
  }
}

# Validations reject what would deploy insecurely or break a rotation (one run, two variables).
run "rejects_invalid_input" {
  command = plan

  variables {
    consumers = {
      bad = { push_endpoint = "http://n8n.example.com/webhook/ttma" }
    }
    secrets = {
      webhook_secret_previous_version = "latest"
    }
  }

  expect_failures = [var.consumers, var.secrets]
}
