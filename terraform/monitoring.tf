# Log-based metrics and alerts. Every alert policy carries the operator's runbook in its
# documentation block; thresholds come from var.alerts (variables.tf, "Alerts").
#
# Google rules relied on here (mock providers cannot check them; tests/monitoring.tftest.hcl
# asserts that the configuration follows them):
# - metric-threshold conditions accept only COMPARISON_GT and COMPARISON_LT; durations and
#   alignment periods are whole minutes, alignment periods at least 60 s (Monitoring API,
#   projects.alertPolicies#MetricThreshold);
# - a condition without a cross-series reducer is evaluated per time series, so one incident is
#   opened per subscription and `$${resource.label.subscription_id}` names it in the notification.

locals {
  ingest_service = local.functions.ingest.name # known before (and without) the function
  # Cloud Run's request count of ingest (all responses), and its 5xx part: the metric filters of
  # the 500 and 5xx alerts.
  ingest_requests     = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.ingest_service}\" AND metric.type = \"run.googleapis.com/request_count\""
  ingest_5xx_requests = "${local.ingest_requests} AND metric.labels.response_code_class = \"5xx\""
  ingest_logs         = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.ingest_service}\""

  reconcile_service = local.functions.reconcile.name
  reconcile_job     = "${local.prefix}-reconcile" # google_cloud_scheduler_job.reconcile (asserted equal in the tests)

  # Each subscription that delivers call events (function pushes, consumer pushes, the BigQuery
  # subscription) with the oldest-unacked-message age it may legitimately reach. archive_recording
  # keeps redelivering a call whose recording is not ready for recording_wait_seconds after the
  # call ended, plus up to one maximum back-off, so its threshold is never below that.
  retry_maximum_backoff_seconds = tonumber(trimsuffix(var.retry_maximum_backoff, "s"))
  recording_backlog_floor       = var.recording_wait_seconds + local.retry_maximum_backoff_seconds + 300

  backlog_alerts = {
    for key, name in local.dead_lettered_subscriptions : key => {
      name = name
      kind = split("/", key)[0]
      what = split("/", key)[1]
      # The Cloud Run service behind a function push (named in the runbook).
      service = startswith(key, "function/") ? local.functions[split("/", key)[1]].name : ""
      threshold = (key == "function/archive_recording"
        ? max(var.alerts.backlog_age_seconds, local.recording_backlog_floor)
      : var.alerts.backlog_age_seconds)
    }
  }

  backlog_runbook = {
    function = <<-EOT
      Pub/Sub cannot get the function to acknowledge: it answers non-2xx or times out, and every
      redelivery waits longer (back-off ${var.retry_minimum_backoff} to ${var.retry_maximum_backoff}). After
      ${var.max_delivery_attempts} attempts a message goes to the dead-letter topic.

      1. Read the function's errors:
         `gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="SERVICE" AND severity>=WARNING' --project=${var.project_id} --freshness=1h --limit=50`
         `outcome` / `reason` say why: `api_error` (TTMA API down or the API key revoked: see
         "Rotate the API key"), Cloud Storage or Firestore errors, `recording_not_ready` beyond the
         recording wait.
      2. 401/403 in the push requests (`log_id("run.googleapis.com/requests")`) mean the push
         invoker lost `run.invoker`, or the function's latest revision failed to start: re-apply Terraform.
      3. Once the cause is fixed the backlog drains by itself. Messages already dead-lettered
         raise the dead-letter alert: replay them (docs/deploy.md, "Replay dead letters").
    EOT
    consumer = <<-EOT
      The consumer's endpoint does not acknowledge (non-2xx, or no answer within its ack deadline),
      so Pub/Sub keeps redelivering with back-off and, after its max delivery attempts, dead-letters.

      1. Check the consumer itself (n8n: is the workflow active, did the webhook URL change?).
      2. See what it answers: Metrics Explorer, `pubsub.googleapis.com/subscription/push_request_count`
         for this subscription grouped by `response_code`.
      3. When it is back the backlog drains by itself; replay what was dead-lettered meanwhile.
    EOT
    bigquery = <<-EOT
      The BigQuery subscription cannot write rows: the table was deleted or its schema changed, or
      the Pub/Sub service agent lost `roles/bigquery.dataEditor` on the table.
      `gcloud pubsub subscriptions describe SUBSCRIPTION --project=${var.project_id}` shows its state;
      re-apply Terraform to restore the table or the grant.
    EOT
  }
}

# 401 responses of ingest (Cloud Run request logs): missing, malformed, stale or wrong signatures.
# Independent of the application's log format.
resource "google_logging_metric" "signature_failures" {
  project     = var.project_id
  name        = "${local.prefix}/ingest_signature_failures"
  description = "Webhook deliveries rejected by ingest with 401 (signature missing, malformed, stale or wrong)."
  filter      = "${local.ingest_logs} AND log_id(\"run.googleapis.com/requests\") AND httpRequest.status=401"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "TTMA ingest signature failures"
  }

  depends_on = [google_project_service.apis]
}

# Duplicate deliveries answered 200 {"status":"duplicate"}: ingest logs outcome "duplicate".
resource "google_logging_metric" "duplicates" {
  project     = var.project_id
  name        = "${local.prefix}/ingest_duplicates"
  description = "Webhook deliveries ingest recognised as already published (outcome duplicate)."
  filter      = "${local.ingest_logs} AND jsonPayload.outcome=\"duplicate\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "TTMA ingest duplicate deliveries"
  }

  depends_on = [google_project_service.apis]
}

# Failed reconcile runs as Cloud Scheduler records them: one AttemptFinished entry per attempt, at
# severity ERROR when the attempt failed. This covers every way a run can fail: reconcile's own 503
# (outcome "incomplete": the vendor API or a backend failed), a crash (500), a timeout, and a
# scheduler that cannot call reconcile at all (401/403/404), which reconcile's own logs never show.
resource "google_logging_metric" "reconcile_failures" {
  project     = var.project_id
  name        = "${local.prefix}/reconcile_failures"
  description = "Cloud Scheduler attempts to run reconcile that failed (non-2xx, timeout or unreachable)."
  filter = join(" AND ", [
    "resource.type=\"cloud_scheduler_job\"",
    "resource.labels.job_id=\"${local.reconcile_job}\"",
    "log_id(\"cloudscheduler.googleapis.com/executions\")",
    "jsonPayload.\"@type\"=\"type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished\"",
    "severity>=ERROR",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "TTMA reconcile failed attempts"
  }

  depends_on = [google_project_service.apis]
}

# --- Pub/Sub: backlog, dead-letter arrivals, dead letters about to expire ---------------------

# One policy per delivering subscription: the age of its oldest unacknowledged message.
resource "google_monitoring_alert_policy" "backlog" {
  for_each = local.backlog_alerts

  project               = var.project_id
  display_name          = "TTMA: ${each.value.name} is falling behind"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "WARNING"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: oldest unacked message in ${each.value.name} older than ${each.value.threshold / 60} min"
    content   = "The oldest message in `${each.value.name}` (${each.value.kind} `${each.value.kind == "function" ? each.value.service : each.value.what}`) has waited more than ${each.value.threshold / 60} minutes for an acknowledgement. Nothing is lost yet: the subscription keeps messages 7 days.\n\n${replace(local.backlog_runbook[each.value.kind], "SERVICE", each.value.service)}"
  }

  conditions {
    display_name = "Oldest unacked message age > ${each.value.threshold}s"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${each.value.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"

      # A gauge sampled every 60 s that may have gaps of a few minutes: the maximum over 5 minutes.
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}

# Prompt notice of every dead-lettered message: Pub/Sub counts, per source subscription, the
# messages it forwards to the dead-letter topic (subscription/dead_letter_message_count). A delta
# with no data while nothing is forwarded: missing data closes the incident, so the next arrival
# opens (and notifies) a new one instead of hiding behind an incident left open for days.
resource "google_monitoring_alert_policy" "dead_letter_arrivals" {
  count = length(local.dead_lettered_subscriptions) > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "TTMA: call events dead-lettered"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "ERROR"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: messages dead-lettered from $${resource.label.subscription_id}"
    content   = <<-EOT
      `$${resource.label.subscription_id}` gave up on messages after their last delivery attempt and
      forwarded them to `${google_pubsub_topic.dead_letter.name}`. They are kept, unacknowledged, in
      `${google_pubsub_subscription.dead_letter_hold.name}` for ${tonumber(trimsuffix(var.dead_letter_retention_duration, "s")) / 86400} days, then lost.

      1. Find why the subscriber rejected them: the "falling behind" alert of the same subscription
         has the steps; the dead letters' attribute `CloudPubSubDeadLetterSourceSubscription` names
         the source.
      2. Fix the cause, then replay (docs/deploy.md, "Replay dead letters"): seek the source
         subscription back, or republish the held messages. The archivers and consumers are
         idempotent by call id.
    EOT
  }

  conditions {
    display_name = "Messages forwarded to the dead-letter topic > 0"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND (${join(" OR ", [for name in values(local.dead_lettered_subscriptions) : "resource.labels.subscription_id = \"${name}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_DELTA"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [google_project_service.apis]
}

# Dead letters nobody replayed: the hold subscription's oldest unacknowledged message nears the
# end of its retention. Acknowledged (replayed) dead letters are retained for seek but are not
# unacked, so they do not count.
resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "TTMA: dead letters about to expire"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "CRITICAL"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: unreplayed dead letters expire soon"
    content   = "The oldest dead letter in `${google_pubsub_subscription.dead_letter_hold.name}` has waited ${floor(local.dead_letter_expiry_warning_seconds / 3600)} hours; Pub/Sub deletes it at ${floor(tonumber(trimsuffix(var.dead_letter_retention_duration, "s")) / 3600)} hours. Replay (docs/deploy.md, \"Replay dead letters\") or export the held messages now; acknowledge those you deliberately drop."
  }

  conditions {
    display_name = "Oldest unreplayed dead letter > ${local.dead_letter_expiry_warning_seconds}s"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.dead_letter_expiry_warning_seconds
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}

locals {
  # Warn when three quarters of the dead-letter retention has passed (23 days of the default 31).
  dead_letter_expiry_warning_seconds = floor(tonumber(trimsuffix(var.dead_letter_retention_duration, "s")) * 0.75 / 60) * 60
}

# --- ingest: 500 (a bug) quickly, other 5xx (backend trouble) only when sustained -------------

resource "google_monitoring_alert_policy" "ingest_500" {
  project               = var.project_id
  display_name          = "TTMA: ingest answers 500"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "ERROR"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: ingest answered 500 (a bug)"
    content   = <<-EOT
      `${local.ingest_service}` answered 500 to at least ${var.alerts.ingest_500_min_count} webhook deliveries in 5 minutes.
      Ingest answers 503 for backend trouble; a 500 is an unhandled exception, a bug. The vendor
      retries a delivery up to 5 times, then gives up; reconcile (hourly) republishes calls whose
      webhook never got through, so nothing is lost while reconcile works.

      `gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="${local.ingest_service}" AND severity>=ERROR' --project=${var.project_id} --freshness=1h`
      shows the traceback. Roll back (apply the previous commit) if a deploy caused it.
    EOT
  }

  conditions {
    display_name = "ingest 500 responses >= ${var.alerts.ingest_500_min_count} in 5 min"

    condition_threshold {
      filter          = "${local.ingest_requests} AND metric.labels.response_code = \"500\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.ingest_500_min_count - 1 # counts are integers: > n-1 is >= n
      duration        = "0s"

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}

# Both conditions must hold (AND) for ingest_5xx_sustain_seconds: a high 5xx ratio AND a minimum
# number of 5xx, so one 503 at night (ratio 100 % of one request) does not page anyone.
resource "google_monitoring_alert_policy" "ingest_5xx" {
  project               = var.project_id
  display_name          = "TTMA: ingest sustained 5xx"
  combiner              = "AND"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "ERROR"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: ingest failing more than ${var.ingest_5xx_ratio_threshold * 100}% of webhook deliveries"
    content   = <<-EOT
      For ${var.alerts.ingest_5xx_sustain_seconds / 60} minutes more than ${var.ingest_5xx_ratio_threshold * 100}% of the webhook deliveries to
      `${local.ingest_service}`, and at least ${var.alerts.ingest_5xx_min_count} of them per 5 minutes, got a 5xx. 503 means Firestore or
      Pub/Sub failed (the vendor retries up to 5 times, reconcile recovers the rest); 504 a timeout;
      500 a bug (its own alert).

      1. Google Cloud status page: Firestore, Pub/Sub, Cloud Run in ${var.region}.
      2. `gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="${local.ingest_service}" AND severity>=WARNING' --project=${var.project_id} --freshness=1h`:
         `outcome` says which backend failed; 429/503 from Cloud Run itself with no application log
         means ingest hit `scaling.ingest_max_instances`.
      3. After the outage, check that the next reconcile run succeeds.
    EOT
  }

  conditions {
    display_name = "5xx / all responses > ${var.ingest_5xx_ratio_threshold}"

    condition_threshold {
      filter             = local.ingest_5xx_requests
      denominator_filter = local.ingest_requests
      comparison         = "COMPARISON_GT"
      threshold_value    = var.ingest_5xx_ratio_threshold
      duration           = "${var.alerts.ingest_5xx_sustain_seconds}s"

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "5xx responses >= ${var.alerts.ingest_5xx_min_count} per 5 min"

    condition_threshold {
      filter          = local.ingest_5xx_requests
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.ingest_5xx_min_count - 1
      duration        = "${var.alerts.ingest_5xx_sustain_seconds}s"

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}

# --- reconcile ----------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "reconcile_failures" {
  project               = var.project_id
  display_name          = "TTMA: reconcile keeps failing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "WARNING"

  documentation {
    mime_type = "text/markdown"
    subject   = "TTMA: reconcile failed ${var.alerts.reconcile_failed_attempts} times in ${var.alerts.reconcile_window_seconds / 3600} h"
    content   = <<-EOT
      Cloud Scheduler's job `${local.reconcile_job}` failed ${var.alerts.reconcile_failed_attempts} attempts within ${var.alerts.reconcile_window_seconds / 60} minutes
      (each run is retried once). Reconcile is the safety net for webhooks that never arrived: each
      run looks back ${var.reconcile_lookback_hours} h, so a few failed runs lose nothing, but calls older than that are
      never recovered while it keeps failing.

      1. `gcloud logging read 'resource.type="cloud_scheduler_job" AND resource.labels.job_id="${local.reconcile_job}"' --project=${var.project_id} --freshness=6h --limit=10`:
         `httpRequest.status` / `jsonPayload.status` of the failed attempts. 401/403: the scheduler
         account lost `run.invoker` on `${local.reconcile_service}` (re-apply Terraform); 404: the function is missing.
      2. 503: reconcile ran but could not finish. Its log line "reconcile finished" with
         `outcome="incomplete"` lists `failures` (TTMA API errors: key revoked? vendor down?):
         `gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="${local.reconcile_service}" AND jsonPayload.outcome="incomplete"' --project=${var.project_id} --freshness=6h`
      3. 500 or a timeout: a bug or a slow vendor API; the traceback is in the same function's logs.
      Once fixed, `gcloud scheduler jobs run ${local.reconcile_job} --location=${var.region} --project=${var.project_id}` runs it now.
    EOT
  }

  conditions {
    display_name = "Failed reconcile attempts >= ${var.alerts.reconcile_failed_attempts} in ${var.alerts.reconcile_window_seconds}s"

    condition_threshold {
      filter          = "resource.type = \"cloud_scheduler_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.reconcile_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.reconcile_failed_attempts - 1
      duration        = "0s"

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "${var.alerts.reconcile_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}
