# Optional: every call event as a row in BigQuery (no code), for analytics.

resource "google_bigquery_dataset" "events" {
  count = var.bigquery_subscription_enabled ? 1 : 0

  project     = var.project_id
  dataset_id  = var.bigquery_dataset_id
  location    = coalesce(var.bigquery_location, var.region)
  description = "TTMA call events written by a Pub/Sub BigQuery subscription."
  labels      = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "events" {
  count = var.bigquery_subscription_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.events[0].dataset_id
  table_id            = "call_events"
  description         = "One row per call event: the delivery envelope (data) and its attributes."
  deletion_protection = !var.force_destroy
  labels              = local.labels

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
  }

  # The columns a Pub/Sub BigQuery subscription writes with write_metadata = true.
  schema = jsonencode([
    { name = "subscription_name", type = "STRING", mode = "NULLABLE" },
    { name = "message_id", type = "STRING", mode = "NULLABLE" },
    { name = "publish_time", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "data", type = "JSON", mode = "NULLABLE" },
    { name = "attributes", type = "JSON", mode = "NULLABLE" },
  ])
}

resource "google_bigquery_table_iam_member" "pubsub_writer" {
  count = var.bigquery_subscription_enabled ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_table.events[0].dataset_id
  table_id   = google_bigquery_table.events[0].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_agent
}

resource "google_pubsub_subscription" "bigquery" {
  count = var.bigquery_subscription_enabled ? 1 : 0

  project = var.project_id
  name    = "${local.call_events_topic}-bigquery"
  topic   = google_pubsub_topic.call_events.id
  labels  = local.labels

  bigquery_config {
    table          = "${var.project_id}.${google_bigquery_table.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}"
    write_metadata = true
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_bigquery_table_iam_member.pubsub_writer, google_pubsub_topic_iam_member.dead_letter_publisher]
}
