# Alerts, BigQuery governance and audit logs (plan-only, mock providers). Mock providers give no
# Google semantics, so each assertion encodes the documented Google rule named beside it:
# - Monitoring API, MetricThreshold: only COMPARISON_GT / COMPARISON_LT; durations and alignment
#   periods in whole minutes, alignment periods >= 60 s; documentation content <= 8192 characters,
#   subject truncated at 255 bytes.
# - Metric names and labels: pubsub.googleapis.com/subscription/oldest_unacked_message_age and
#   /dead_letter_message_count (resource pubsub_subscription, label subscription_id);
#   run.googleapis.com/request_count (cloud_run_revision, labels response_code, response_code_class);
#   user-defined log metrics are logging.googleapis.com/user/<name>.
# - Cloud Scheduler writes one AttemptFinished entry per attempt (log cloudscheduler.googleapis.com/executions,
#   resource cloud_scheduler_job, label job_id), at severity ERROR when the attempt failed.
# - BigQuery: a dataset without access entries gets projectReaders READER / projectWriters WRITER;
#   time_partitioning.expiration_ms applies to the existing table, default_partition_expiration_ms
#   only to tables created later.

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

run "alerts_defaults" {
  command = plan

  # --- every condition is one the Monitoring API accepts ------------------------------------------
  assert {
    condition = alltrue(flatten([
      for p in concat(
        values(google_monitoring_alert_policy.backlog),
        google_monitoring_alert_policy.dead_letter_arrivals,
        [google_monitoring_alert_policy.dead_letters, google_monitoring_alert_policy.ingest_500, google_monitoring_alert_policy.ingest_5xx, google_monitoring_alert_policy.reconcile_failures],
        ) : [for c in p.conditions : [for t in c.condition_threshold : concat(
          [contains(["COMPARISON_GT", "COMPARISON_LT"], t.comparison)],
          [tonumber(trimsuffix(t.duration, "s")) % 60 == 0],
          [for a in concat(t.aggregations, t.denominator_aggregations) : tonumber(trimsuffix(a.alignment_period, "s")) >= 60 && tonumber(trimsuffix(a.alignment_period, "s")) % 60 == 0 && tonumber(trimsuffix(a.alignment_period, "s")) <= 86400],
      )]]
    ]))
    error_message = "Metric-threshold conditions must use COMPARISON_GT/LT and whole-minute durations and alignment periods (>= 60 s)."
  }

  assert {
    condition = alltrue([
      for p in concat(
        values(google_monitoring_alert_policy.backlog),
        google_monitoring_alert_policy.dead_letter_arrivals,
        [google_monitoring_alert_policy.dead_letters, google_monitoring_alert_policy.ingest_500, google_monitoring_alert_policy.ingest_5xx, google_monitoring_alert_policy.reconcile_failures],
        ) : (
        length(p.documentation) == 1 && p.documentation[0].mime_type == "text/markdown" &&
        length(p.documentation[0].content) > 100 && length(p.documentation[0].content) <= 8192 &&
        length(p.documentation[0].subject) <= 255
      )
    ])
    error_message = "Every policy tells the operator what to do (markdown, within the API's 8192-character limit) and a subject under 255 bytes."
  }

  # --- push backlog: one policy per delivering subscription --------------------------------------
  assert {
    condition     = toset(keys(google_monitoring_alert_policy.backlog)) == toset(["function/archive_transcript", "function/archive_recording"])
    error_message = "By default the two function push subscriptions have a backlog alert."
  }

  assert {
    condition = alltrue([for k, s in google_pubsub_subscription.function_push :
      google_monitoring_alert_policy.backlog["function/${k}"].conditions[0].condition_threshold[0].filter ==
      "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${s.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
    ])
    error_message = "The backlog alert watches oldest_unacked_message_age of exactly its own subscription."
  }

  assert {
    condition = alltrue([for p in values(google_monitoring_alert_policy.backlog) :
      p.conditions[0].condition_threshold[0].threshold_value == 1800 &&
      p.conditions[0].condition_threshold[0].aggregations[0].per_series_aligner == "ALIGN_MAX" &&
      p.conditions[0].condition_threshold[0].aggregations[0].cross_series_reducer == null
    ])
    error_message = "Default backlog threshold is 30 minutes (recording wait 900 s + max back-off 600 s + 300 s = 1800 s too), per subscription (no cross-series reducer)."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.backlog["function/archive_recording"].documentation[0].content, "service_name=\"ttma-archive-recording\"") && !strcontains(google_monitoring_alert_policy.backlog["function/archive_recording"].documentation[0].content, "SERVICE")
    error_message = "The backlog runbook names the function whose logs to read."
  }

  # --- dead letters: on arrival, per source subscription; unreplayed ones before they expire ----
  assert {
    condition = (
      strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].filter, "metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\"") &&
      alltrue([for s in google_pubsub_subscription.function_push : strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].filter, "resource.labels.subscription_id = \"${s.name}\"")]) &&
      google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].threshold_value == 0 &&
      google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].duration == "0s" &&
      google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].aggregations[0].alignment_period == "60s" &&
      google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].aggregations[0].per_series_aligner == "ALIGN_DELTA" &&
      google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].evaluation_missing_data == "EVALUATION_MISSING_DATA_INACTIVE"
    )
    error_message = "Dead letters alert within a minute of being forwarded, per source subscription, and close when none arrive (so the next arrival notifies again)."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].documentation[0].content, "$${resource.label.subscription_id}") && strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].documentation[0].content, "Replay dead letters")
    error_message = "The dead-letter notification names the source subscription (documentation variable) and points at the replay procedure."
  }

  assert {
    condition = (
      google_monitoring_alert_policy.dead_letters.conditions[0].condition_threshold[0].filter == "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"" &&
      google_monitoring_alert_policy.dead_letters.conditions[0].condition_threshold[0].threshold_value == 2008800 &&
      google_monitoring_alert_policy.dead_letters.severity == "CRITICAL"
    )
    error_message = "Unreplayed dead letters alert when 3/4 of the 31-day retention has passed (23.25 days), before Pub/Sub deletes them."
  }

  # --- ingest: 500 quickly; other 5xx only when sustained ----------------------------------------
  assert {
    condition = (
      google_monitoring_alert_policy.ingest_500.conditions[0].condition_threshold[0].filter == "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"ttma-ingest\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code = \"500\"" &&
      google_monitoring_alert_policy.ingest_500.conditions[0].condition_threshold[0].threshold_value == 0 &&
      google_monitoring_alert_policy.ingest_500.conditions[0].condition_threshold[0].duration == "0s"
    )
    error_message = "A single 500 (a bug) alerts at once."
  }

  assert {
    condition = (
      google_monitoring_alert_policy.ingest_5xx.combiner == "AND" &&
      length(google_monitoring_alert_policy.ingest_5xx.conditions) == 2 &&
      google_monitoring_alert_policy.ingest_5xx.conditions[0].condition_threshold[0].denominator_filter != null &&
      strcontains(google_monitoring_alert_policy.ingest_5xx.conditions[0].condition_threshold[0].filter, "metric.labels.response_code_class = \"5xx\"") &&
      google_monitoring_alert_policy.ingest_5xx.conditions[0].condition_threshold[0].threshold_value == 0.05 &&
      google_monitoring_alert_policy.ingest_5xx.conditions[1].condition_threshold[0].denominator_filter == null &&
      google_monitoring_alert_policy.ingest_5xx.conditions[1].condition_threshold[0].threshold_value == 9 &&
      alltrue([for c in google_monitoring_alert_policy.ingest_5xx.conditions : c.condition_threshold[0].duration == "600s"])
    )
    error_message = "5xx alert only when BOTH the ratio > 5% AND at least 10 5xx per 5 min hold for 10 minutes: one 503 never fires it."
  }

  # --- reconcile: failed Cloud Scheduler attempts -------------------------------------------------
  assert {
    condition = (
      google_logging_metric.reconcile_failures.filter == "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${google_cloud_scheduler_job.reconcile[0].name}\" AND log_id(\"cloudscheduler.googleapis.com/executions\") AND jsonPayload.\"@type\"=\"type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished\" AND severity>=ERROR" &&
      google_logging_metric.reconcile_failures.metric_descriptor[0].metric_kind == "DELTA"
    )
    error_message = "reconcile failures are the scheduler job's failed attempts (AttemptFinished at ERROR), for this module's job."
  }

  assert {
    condition = (
      google_monitoring_alert_policy.reconcile_failures.conditions[0].condition_threshold[0].filter == "resource.type = \"cloud_scheduler_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.reconcile_failures.name}\"" &&
      google_monitoring_alert_policy.reconcile_failures.conditions[0].condition_threshold[0].threshold_value == 2 &&
      google_monitoring_alert_policy.reconcile_failures.conditions[0].condition_threshold[0].aggregations[0].alignment_period == "7200s"
    )
    error_message = "reconcile alerts on 3 failed attempts in 2 hours (a second failing run), read from its log-based metric."
  }

  # --- audit logs ---------------------------------------------------------------------------------
  assert {
    condition = (
      length(google_project_iam_audit_config.storage) == 1 &&
      google_project_iam_audit_config.storage[0].service == "storage.googleapis.com" &&
      toset([for c in google_project_iam_audit_config.storage[0].audit_log_config : c.log_type]) == toset(["ADMIN_READ", "DATA_READ", "DATA_WRITE"]) &&
      alltrue([for c in google_project_iam_audit_config.storage[0].audit_log_config : c.exempted_members == null || try(length(c.exempted_members) == 0, false)])
    )
    error_message = "Data Access logs for Cloud Storage (the buckets' CKV_GCP_62 skip relies on them) are on by default, with no exempted member."
  }
}

run "bigquery_governance" {
  command = plan

  variables {
    bigquery_subscription_enabled = true
    bigquery_readers              = ["group:analysts@example.com", "serviceAccount:report@ttma-test-project.iam.gserviceaccount.com"]
  }

  assert {
    condition = (
      toset([for a in google_bigquery_dataset.events[0].access : "${a.role}:${coalesce(a.special_group, a.group_by_email, a.user_by_email, "?")}"]) ==
      toset(["OWNER:projectOwners", "READER:analysts@example.com", "READER:report@ttma-test-project.iam.gserviceaccount.com"])
    )
    error_message = "The dataset's access list is explicit: project owners and the named readers only."
  }

  assert {
    condition = alltrue([for a in google_bigquery_dataset.events[0].access :
      !contains(["projectReaders", "projectWriters", "allAuthenticatedUsers", "allUsers"], coalesce(a.special_group, "-")) && a.iam_member == null && a.domain == null
    ])
    error_message = "No implicit project-wide readers/writers, no public or domain-wide access to PII."
  }

  assert {
    condition = (
      google_bigquery_dataset.events[0].default_partition_expiration_ms == 31536000000 &&
      google_bigquery_table.events[0].time_partitioning[0].expiration_ms == 31536000000 &&
      google_bigquery_table.events[0].time_partitioning[0].field == "publish_time"
    )
    error_message = "Daily partitions of publish_time expire after bigquery_retention_days (365 days), on the existing table and as the dataset default."
  }

  assert {
    condition     = google_bigquery_table.events[0].deletion_protection == true
    error_message = "The table is protected from deletion unless force_destroy is set (checkov CKV_GCP_121 skip)."
  }

  assert {
    condition     = google_bigquery_table_iam_member.pubsub_writer[0].role == "roles/bigquery.dataEditor" && google_bigquery_table_iam_member.pubsub_writer[0].member == "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com" && google_bigquery_table_iam_member.pubsub_writer[0].table_id == google_bigquery_table.events[0].table_id
    error_message = "The Pub/Sub service agent keeps its table-level writer grant (the dataset access list does not carry it)."
  }

  assert {
    condition     = contains(keys(google_monitoring_alert_policy.backlog), "bigquery/events") && strcontains(google_monitoring_alert_policy.backlog["bigquery/events"].documentation[0].content, "dataEditor")
    error_message = "The BigQuery subscription gets a backlog alert with its own runbook."
  }
}

run "custom_thresholds_consumers_no_audit" {
  command = plan

  variables {
    recording_wait_seconds        = 3600
    enable_data_access_audit_logs = false
    bigquery_retention_days       = 30
    bigquery_subscription_enabled = true
    alerts = {
      backlog_age_seconds        = 900
      ingest_500_min_count       = 3
      ingest_5xx_min_count       = 25
      ingest_5xx_sustain_seconds = 1200
      reconcile_failed_attempts  = 5
      reconcile_window_seconds   = 21600
    }
    consumers = {
      n8n = { push_endpoint = "https://n8n.example.com/webhook/ttma" }
    }
  }

  assert {
    condition = (
      google_monitoring_alert_policy.backlog["function/archive_transcript"].conditions[0].condition_threshold[0].threshold_value == 900 &&
      google_monitoring_alert_policy.backlog["consumer/n8n"].conditions[0].condition_threshold[0].threshold_value == 900 &&
      google_monitoring_alert_policy.backlog["function/archive_recording"].conditions[0].condition_threshold[0].threshold_value == 4500
    )
    error_message = "Consumers get backlog alerts; archive_recording's threshold never drops below recording wait + max back-off + 5 min (3600 + 600 + 300)."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].filter, "resource.labels.subscription_id = \"${google_pubsub_subscription.consumer_push["n8n"].name}\"") && strcontains(google_monitoring_alert_policy.dead_letter_arrivals[0].conditions[0].condition_threshold[0].filter, "resource.labels.subscription_id = \"${google_pubsub_subscription.bigquery[0].name}\"")
    error_message = "Consumers and the BigQuery subscription are watched for dead letters too."
  }

  assert {
    condition = (
      google_monitoring_alert_policy.ingest_500.conditions[0].condition_threshold[0].threshold_value == 2 &&
      google_monitoring_alert_policy.ingest_5xx.conditions[1].condition_threshold[0].threshold_value == 24 &&
      google_monitoring_alert_policy.ingest_5xx.conditions[0].condition_threshold[0].duration == "1200s" &&
      google_monitoring_alert_policy.reconcile_failures.conditions[0].condition_threshold[0].threshold_value == 4 &&
      google_monitoring_alert_policy.reconcile_failures.conditions[0].condition_threshold[0].aggregations[0].alignment_period == "21600s"
    )
    error_message = "alerts.* set the thresholds, windows and durations."
  }

  assert {
    condition     = length(google_project_iam_audit_config.storage) == 0
    error_message = "enable_data_access_audit_logs = false leaves audit configs to whoever manages them centrally."
  }

  assert {
    condition     = google_bigquery_table.events[0].time_partitioning[0].expiration_ms == 2592000000 && google_bigquery_dataset.events[0].default_partition_expiration_ms == 2592000000
    error_message = "bigquery_retention_days sets the partition expiration in milliseconds."
  }
}

# Without the functions (first apply) the alerts that need no function still plan.
run "alerts_without_functions" {
  command = plan

  variables {
    deploy_functions = false
  }

  assert {
    condition     = length(google_monitoring_alert_policy.backlog) == 0 && length(google_monitoring_alert_policy.dead_letter_arrivals) == 0 && google_monitoring_alert_policy.dead_letters.severity == "CRITICAL"
    error_message = "No function subscriptions, no backlog or arrival alert (an empty OR filter would be invalid); the hold alert stays."
  }
}

# --- every new validation rejects what Cloud Monitoring or the governance rules would not accept ----

run "rejects_backlog_age_not_whole_minutes" {
  command = plan
  variables {
    alerts = { backlog_age_seconds = 1830 }
  }
  expect_failures = [var.alerts]
}

run "rejects_zero_min_count" {
  command = plan
  variables {
    alerts = { ingest_5xx_min_count = 0 }
  }
  expect_failures = [var.alerts]
}

run "rejects_sustain_not_whole_minutes" {
  command = plan
  variables {
    alerts = { ingest_5xx_sustain_seconds = 90 }
  }
  expect_failures = [var.alerts]
}

run "rejects_reconcile_window_too_long" {
  command = plan
  variables {
    alerts = { reconcile_window_seconds = 172800 }
  }
  expect_failures = [var.alerts]
}

run "rejects_endless_bigquery_retention" {
  command = plan
  variables {
    bigquery_retention_days = 0
  }
  expect_failures = [var.bigquery_retention_days]
}

run "rejects_public_bigquery_reader" {
  command = plan
  variables {
    bigquery_readers = ["allAuthenticatedUsers"]
  }
  expect_failures = [var.bigquery_readers]
}
