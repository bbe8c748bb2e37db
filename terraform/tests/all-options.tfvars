# Every optional part of the module switched on, for checkov (scripts/check_terraform.sh): with
# the defaults alone, resources behind count = 0 (BigQuery, consumers, CMEK) are never scanned.
project_id                    = "ttma-checkov-project"
region                        = "europe-west1"
bigquery_subscription_enabled = true
consumers = {
  n8n = { push_endpoint = "https://n8n.example.com/webhook/ttma" }
}
archive = {
  kms_key_name   = "projects/kms-project/locations/europe-west1/keyRings/ring/cryptoKeys/archive"
  retention_days = 365
}
secrets = {
  replica_locations = ["europe-west1"]
}
