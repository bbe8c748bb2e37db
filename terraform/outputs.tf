output "webhook_url" {
  description = "HTTPS URL of the ingest function: register it with TTMA as the webhook URL (PUT /v1/voice/webhooks). Null while deploy_functions is false."
  value       = try(google_cloudfunctions2_function.this["ingest"].service_config[0].uri, null)
}

output "function_names" {
  description = "Cloud Functions (2nd gen) names by entry point."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.name }
}

output "call_events_topic" {
  description = "Name of the call-events Pub/Sub topic (CALL_EVENTS_TOPIC); attach further subscriptions here."
  value       = google_pubsub_topic.call_events.name
}

output "dead_letter_topic" {
  description = "Name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead letters for inspection and replay."
  value       = google_pubsub_subscription.dead_letter_hold.name
}

output "consumer_subscriptions" {
  description = "Push subscription name of each entry of var.consumers."
  value       = { for k, s in google_pubsub_subscription.consumer_push : k => s.name }
}

output "archive_bucket" {
  description = "Name of the archive bucket (ARCHIVE_BUCKET)."
  value       = google_storage_bucket.archive.name
}

output "source_bucket" {
  description = "Name of the bucket holding the functions' source zips."
  value       = google_storage_bucket.source.name
}

output "firestore_database" {
  description = "Firestore database the functions use (FIRESTORE_DATABASE)."
  value       = local.firestore_database
}

output "webhook_secret_id" {
  description = "Secret Manager secret holding the webhook signing secret (add versions with gcloud, see docs/deploy.md)."
  value       = google_secret_manager_secret.webhook.secret_id
}

output "api_key_secret_id" {
  description = "Secret Manager secret holding the TTMA API key (add versions with gcloud, see docs/deploy.md)."
  value       = google_secret_manager_secret.api_key.secret_id
}

output "phone_hash_key_secret_id" {
  description = "Secret Manager secret holding the key of the index's phone-number hashes (ttma-relay forget --phone; see docs/deploy.md)."
  value       = google_secret_manager_secret.phone_hash_key.secret_id
}

output "service_accounts" {
  description = "Service account emails: one per function, the push and scheduler invokers, the consumer push identity and the build account."
  value       = { for k, sa in google_service_account.this : k => sa.email }
}

output "consumer_push_service_account" {
  description = "Email of the identity whose OIDC token consumers receive (audience: the consumer's URL); consumers that verify tokens should accept only this one."
  value       = google_service_account.this["consumer_push"].email
}
