# Log-based metrics and alerts.

locals {
  ingest_service = google_cloudfunctions2_function.this["ingest"].name
  ingest_logs    = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.ingest_service}\""
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

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "TTMA: call events in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "ERROR"

  documentation {
    mime_type = "text/markdown"
    content   = "Messages that kept failing delivery are held in `${google_pubsub_subscription.dead_letter_hold.name}`. Find the cause in the subscriber's logs, fix it, then replay them (docs/deploy.md, \"Replaying dead letters\")."
  }

  conditions {
    display_name = "Undelivered dead letters > 0"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

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

resource "google_monitoring_alert_policy" "ingest_5xx" {
  project               = var.project_id
  display_name          = "TTMA: ingest 5xx rate"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels
  severity              = "ERROR"

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.ingest_5xx_ratio_threshold * 100}% of webhook deliveries got a 5xx from `${local.ingest_service}` over 5 minutes. 503 means Firestore or Pub/Sub failed and the vendor will retry (up to 5 times); 500 is a bug. Check the function's logs."
  }

  conditions {
    display_name = "5xx / all responses > ${var.ingest_5xx_ratio_threshold}"

    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.ingest_service}\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.ingest_service}\" AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.ingest_5xx_ratio_threshold
      duration           = "0s"

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

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.apis]
}
