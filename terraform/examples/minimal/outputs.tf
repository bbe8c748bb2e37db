output "webhook_url" {
  description = "Register this URL with TTMA (ttma-relay configure-webhook, or PUT /v1/voice/webhooks). Null until deploy_functions is true."
  value       = module.ttma_relay.webhook_url
}

output "webhook_secret_id" {
  description = "Secret Manager secret that holds the webhook signing secret: add its value with gcloud."
  value       = module.ttma_relay.webhook_secret_id
}

output "api_key_secret_id" {
  description = "Secret Manager secret that holds the TTMA read API key: add its value with gcloud."
  value       = module.ttma_relay.api_key_secret_id
}

output "archive_bucket" {
  description = "Bucket holding calls/YYYY/MM/DD/<call>/call.json, transcript.txt and recording.mp3."
  value       = module.ttma_relay.archive_bucket
}

output "call_events_topic" {
  description = "Pub/Sub topic every call event is published to; attach further subscriptions here."
  value       = module.ttma_relay.call_events_topic
}

output "dead_letter_subscription" {
  description = "Pull subscription holding messages that kept failing delivery (inspect, then replay)."
  value       = module.ttma_relay.dead_letter_subscription
}
