# Optional: every call event as a row in BigQuery (no code), for analytics. The rows are PII
# (the vendor's webhook body: numbers, transcripts, facts), so the dataset gets an explicit access
# list and every daily partition expires after bigquery_retention_days.

locals {
  bigquery_retention_ms = var.bigquery_retention_days * 86400000

  # The dataset's whole access list (the `access` blocks are authoritative). Without them BigQuery
  # would add READER for projectReaders and WRITER for projectWriters (every project Viewer and
  # Editor) and OWNER for the creating identity. The Pub/Sub service agent writes through its
  # table-level roles/bigquery.dataEditor (google_bigquery_table_iam_member.pubsub_writer), which
  # is the table's IAM policy, not this list.
  bigquery_access = concat(
    [{ role = "OWNER", special_group = "projectOwners", group_by_email = null, user_by_email = null }],
    [for m in var.bigquery_readers : {
      role           = "READER"
      special_group  = null
      group_by_email = startswith(m, "group:") ? trimprefix(m, "group:") : null
      user_by_email  = startswith(m, "group:") ? null : split(":", m)[1]
    }],
  )
}

resource "google_bigquery_dataset" "events" {
  # checkov:skip=CKV_GCP_81:Google-managed encryption, as for the call-events topic the rows come from (CKV_GCP_83); the module offers no BigQuery CMEK, rows expire after bigquery_retention_days.
  count = var.bigquery_subscription_enabled ? 1 : 0

  project     = var.project_id
  dataset_id  = var.bigquery_dataset_id
  location    = coalesce(var.bigquery_location, var.region)
  description = "TTMA call events (PII) written by a Pub/Sub BigQuery subscription; partitions expire after ${var.bigquery_retention_days} days."
  labels      = local.labels

  # For partitioned tables created later in the dataset; call_events sets its own expiration.
  default_partition_expiration_ms = local.bigquery_retention_ms

  dynamic "access" {
    for_each = local.bigquery_access
    content {
      role           = access.value.role
      special_group  = access.value.special_group
      group_by_email = access.value.group_by_email
      user_by_email  = access.value.user_by_email
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "events" {
  # checkov:skip=CKV_GCP_80:Google-managed encryption, as for the call-events topic the rows come from (CKV_GCP_83); the module offers no BigQuery CMEK, rows expire after bigquery_retention_days.
  # checkov:skip=CKV_GCP_121:deletion_protection is true unless force_destroy is set (checkov cannot evaluate !var.force_destroy); asserted in tests/monitoring.tftest.hcl.
  count = var.bigquery_subscription_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.events[0].dataset_id
  table_id            = "call_events"
  description         = "One row per call event: the delivery envelope (data) and its attributes."
  deletion_protection = !var.force_destroy
  labels              = local.labels

  # A partition (one day of publish_time) is deleted bigquery_retention_days after its day.
  time_partitioning {
    type          = "DAY"
    field         = "publish_time"
    expiration_ms = local.bigquery_retention_ms
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

  depends_on = [time_sleep.pubsub_agent] # the agent may not be visible to IAM at once (iam.tf)
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
