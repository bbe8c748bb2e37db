# First-apply and storage properties of the module (plan-only, mock providers). Mock providers
# give no Google semantics: each assertion encodes a documented Google rule named beside it.

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
}

run "defaults_version_the_archive_and_wait_for_iam" {
  command = plan

  assert {
    condition     = google_storage_bucket.archive.versioning[0].enabled == true && length(google_storage_bucket.archive.retention_policy) == 0
    error_message = "Without a retention policy the archive bucket is versioned."
  }

  assert {
    condition     = length([for r in google_storage_bucket.archive.lifecycle_rule : r if try(r.condition[0].days_since_noncurrent_time, null) == 30]) == 1
    error_message = "A versioned archive deletes noncurrent versions after archive.noncurrent_delete_after_days."
  }

  # Retention by default (SECURITY.md): objects deleted 365 days after creation, index
  # documents 365 days after indexing (their expireAt, under a Firestore TTL policy).
  assert {
    condition     = length([for r in google_storage_bucket.archive.lifecycle_rule : r if r.action[0].type == "Delete" && try(r.condition[0].age, null) == 365]) == 1
    error_message = "By default archived objects are deleted 365 days after creation."
  }

  assert {
    condition = google_firestore_field.calls_ttl.collection == "ttma_calls" && google_firestore_field.calls_ttl.field == "expireAt" && alltrue([for k in ["archive_transcript", "archive_recording"] :
    google_cloudfunctions2_function.this[k].service_config[0].environment_variables["CALL_RETENTION_DAYS"] == "365"])
    error_message = "By default the index documents expire 365 days after indexing (TTL on expireAt, CALL_RETENTION_DAYS)."
  }

  # Pub/Sub cannot delete one message: personal data in messages lasts as long as their
  # retention (SECURITY.md): the topic 7 days, subscriptions 7 days, dead letters 31 days.
  assert {
    condition     = google_pubsub_topic.call_events.message_retention_duration == "604800s" && google_pubsub_subscription.dead_letter_hold.message_retention_duration == "2678400s" && alltrue([for s in google_pubsub_subscription.function_push : s.message_retention_duration == "604800s"])
    error_message = "Messages (personal data) are kept 7 days on the topic and its subscriptions, 31 days as dead letters."
  }

  assert {
    condition     = time_sleep.iam_propagation.create_duration == "60s" && time_sleep.pubsub_agent.create_duration == "60s"
    error_message = "The functions and the Pub/Sub agent's grants wait iam_propagation_seconds (60 s) on a fresh project."
  }

  # functions-framework's gunicorn runs THREADS threads (default 4 x CPUs): one per request Cloud
  # Run may send at once, or requests queue inside the instance.
  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.this :
    f.service_config[0].environment_variables["THREADS"] == tostring(f.service_config[0].max_instance_request_concurrency)])
    error_message = "Every function runs as many server threads as its Cloud Run concurrency."
  }

  assert {
    condition     = google_cloudfunctions2_function.this["ingest"].service_config[0].min_instance_count == 1
    error_message = "ingest keeps one warm instance by default, so the vendor's webhook meets no cold start."
  }

  assert {
    condition     = length(google_cloudfunctions2_function.this) == 4 && length(google_pubsub_subscription.function_push) == 2 && length(google_cloud_scheduler_job.reconcile) == 1
    error_message = "By default every function, its push subscription and the scheduler job are deployed."
  }
}

# Cloud Storage: "Object Versioning cannot be enabled on a bucket with a retention policy"
# (Cloud Storage docs, Bucket Lock / retention policies). Such a bucket must not be versioned.
run "retention_turns_versioning_off" {
  command = plan

  variables {
    archive = {
      retention_days    = 400
      retention_locked  = true
      delete_after_days = 400 # must be at least retention_days (validation in variables.tf)
    }
  }

  assert {
    condition     = google_storage_bucket.archive.versioning[0].enabled == false
    error_message = "A bucket with a retention policy cannot have Object Versioning."
  }

  assert {
    condition     = tostring(google_storage_bucket.archive.retention_policy[0].retention_period) == "34560000" && google_storage_bucket.archive.retention_policy[0].is_locked == true
    error_message = "The retention policy is archive.retention_days long and locked when asked."
  }

  assert {
    condition     = length([for r in google_storage_bucket.archive.lifecycle_rule : r if try(r.condition[0].days_since_noncurrent_time, null) != null]) == 0
    error_message = "An unversioned bucket has no noncurrent-version rule."
  }
}

run "lifecycle_rules_turn_off_with_zero" {
  command = plan

  variables {
    archive = {
      nearline_after_days = 0
      coldline_after_days = 0
      delete_after_days   = 3650
    }
  }

  assert {
    condition = (
      length([for r in google_storage_bucket.archive.lifecycle_rule : r if r.action[0].type == "SetStorageClass"]) == 0 &&
      length([for r in google_storage_bucket.archive.lifecycle_rule : r if r.action[0].type == "Delete" && try(r.condition[0].age, null) == 3650]) == 1
    )
    error_message = "0 turns a storage-class rule off; delete_after_days deletes at that age."
  }
}

# The first apply of a new deployment: everything but the functions and what points at them.
run "first_apply_without_functions" {
  command = plan

  variables {
    deploy_functions = false
  }

  assert {
    condition = (
      length(google_cloudfunctions2_function.this) == 0 &&
      length(google_pubsub_subscription.function_push) == 0 &&
      length(google_cloud_scheduler_job.reconcile) == 0 &&
      length(google_cloud_run_service_iam_member.push_invoker) == 0 &&
      length(google_cloud_run_service_iam_member.ingest_public) == 0 &&
      length(google_cloud_run_service_iam_member.scheduler_invoker) == 0 &&
      length(google_service_account_iam_member.pubsub_token_creator) == 0
    )
    error_message = "deploy_functions = false creates no function and nothing that points at one."
  }

  assert {
    condition     = google_secret_manager_secret.webhook.secret_id == "ttma-webhook-secret" && google_secret_manager_secret.api_key.secret_id == "ttma-api-key" && length(google_secret_manager_secret_iam_member.api_key) == 3
    error_message = "The first apply creates both secrets and their access grants, ready for their values."
  }

  assert {
    condition     = output.webhook_url == null
    error_message = "No webhook URL before the functions exist."
  }
}

# Organisation policy gcp.resourceLocations refuses automatic replication (it stores the secret
# in any region): secrets.replica_locations pins them to named regions.
run "secrets_in_restricted_locations" {
  command = plan

  variables {
    secrets = {
      replica_locations = ["europe-west1", "europe-west4"]
    }
    scaling = {
      ingest_min_instances = 0
    }
  }

  assert {
    condition = alltrue([for s in [google_secret_manager_secret.webhook, google_secret_manager_secret.api_key] :
      length(s.replication[0].auto) == 0 &&
    toset([for r in s.replication[0].user_managed[0].replicas : r.location]) == toset(["europe-west1", "europe-west4"])])
    error_message = "With replica_locations both secrets use user-managed replication in exactly those regions."
  }

  assert {
    condition     = google_cloudfunctions2_function.this["ingest"].service_config[0].min_instance_count == 0
    error_message = "scaling.ingest_min_instances = 0 scales ingest to zero."
  }
}

run "default_secrets_replicate_automatically" {
  command = plan

  assert {
    condition     = length(google_secret_manager_secret.webhook.replication[0].auto) == 1 && length(google_secret_manager_secret.webhook.replication[0].user_managed) == 0
    error_message = "Without replica_locations the secrets replicate automatically."
  }
}

run "rejects_invalid_archive_and_timing" {
  command = plan

  variables {
    archive = {
      retention_locked    = true
      nearline_after_days = 90
      coldline_after_days = 30
    }
    iam_propagation_seconds = 601
    secrets = {
      replica_locations = ["europe-west1", "europe-west1"]
    }
    scaling = {
      ingest_min_instances = 5
      ingest_max_instances = 2
    }
  }

  expect_failures = [var.archive, var.iam_propagation_seconds, var.secrets, var.scaling]
}
