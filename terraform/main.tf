locals {
  prefix = var.name_prefix

  labels = merge({ app = "ttma-relay", managed-by = "terraform" }, var.labels)

  apis = toset(concat(
    [
      "artifactregistry.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "firestore.googleapis.com",
      "iam.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "storage.googleapis.com",
    ],
    var.bigquery_subscription_enabled ? ["bigquery.googleapis.com"] : [],
  ))

  firestore_database = var.firestore_database
  firestore_location = coalesce(var.firestore_location, var.region)
  bucket_location    = upper(coalesce(var.archive.location, var.region))

  call_events_topic = "${local.prefix}-call-events"
  dead_letter_topic = "${local.prefix}-call-events-dead-letter"
  archive_bucket    = coalesce(var.archive.bucket_name, "${var.project_id}-${local.prefix}-archive")
  source_bucket     = "${var.project_id}-${local.prefix}-fn-source"
  # The Pub/Sub service agent has no GA data source or resource (google_project_service_identity
  # is google-beta only in every provider version this module admits): its email is fixed by
  # Google, and the grants to it wait for the Pub/Sub API and the topic (see iam.tf).
  pubsub_agent       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  storage_agent      = data.google_storage_project_service_account.this.member
  firestore_resource = "projects/${var.project_id}/databases/${local.firestore_database}"
}

data "google_project" "this" {
  project_id = var.project_id
}

# Reading the Cloud Storage service agent creates it when the project has none yet (a fresh
# project), so the CMEK grant in iam.tf never names an account that does not exist.
data "google_storage_project_service_account" "this" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}
