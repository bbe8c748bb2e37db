# The call-events topic, its dead-letter topic, and one Terraform-managed push subscription per
# subscriber function and per downstream consumer. Every push subscription carries an OIDC
# token, a retry back-off and a dead-letter policy.

locals {
  # Subscriber functions: wrapped push (functions-framework turns the push body into a CloudEvent).
  subscriber_functions = {
    archive_transcript = { ack_deadline_seconds = 120 }
    archive_recording  = { ack_deadline_seconds = 300 }
  }

  # Every subscription with a dead-letter policy: the Pub/Sub service agent needs
  # roles/pubsub.subscriber on each of them to forward messages to the dead-letter topic.
  dead_lettered_subscriptions = merge(
    { for k, s in google_pubsub_subscription.function_push : "function/${k}" => s.name },
    { for k, s in google_pubsub_subscription.consumer_push : "consumer/${k}" => s.name },
    { for s in google_pubsub_subscription.bigquery : "bigquery/events" => s.name },
  )
}

resource "google_pubsub_topic" "call_events" {
  # checkov:skip=CKV_GCP_83:Call events are encrypted at rest with Google-managed keys; CMEK is offered for the archive bucket, the long-term store of the same data.
  project                    = var.project_id
  name                       = local.call_events_topic
  labels                     = local.labels
  message_retention_duration = var.topic_message_retention_duration

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Dead letters are encrypted at rest with Google-managed keys, like the call-events topic they come from.
  project = var.project_id
  name    = local.dead_letter_topic
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

# Keeps every dead letter (acknowledged ones too, for seek-based replay) until it expires.
resource "google_pubsub_subscription" "dead_letter_hold" {
  project = var.project_id
  name    = "${local.dead_letter_topic}-hold"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention_duration
  retain_acked_messages      = true

  expiration_policy {
    ttl = "" # never expires
  }
}

resource "google_pubsub_subscription" "function_push" {
  for_each = var.deploy_functions ? local.subscriber_functions : {}

  project = var.project_id
  name    = "${local.call_events_topic}-${replace(each.key, "_", "-")}"
  topic   = google_pubsub_topic.call_events.id
  labels  = local.labels

  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = google_cloudfunctions2_function.this[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.this["push_invoker"].email
      audience              = google_cloudfunctions2_function.this[each.key].service_config[0].uri
    }
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

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_token_creator,
    google_cloud_run_service_iam_member.push_invoker,
  ]
}

resource "google_pubsub_subscription" "consumer_push" {
  for_each = var.consumers

  project = var.project_id
  name    = "${local.call_events_topic}-consumer-${each.key}"
  topic   = google_pubsub_topic.call_events.id
  labels  = local.labels
  filter  = each.value.filter

  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = each.value.push_endpoint

    # The consumer receives the message data as the body (the vendor's webhook JSON, unchanged)
    # and the attributes as HTTP headers.
    no_wrapper {
      write_metadata = true
    }

    oidc_token {
      service_account_email = google_service_account.this["consumer_push"].email
      audience              = coalesce(each.value.audience, each.value.push_endpoint)
    }
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = coalesce(each.value.max_delivery_attempts, var.max_delivery_attempts)
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}
