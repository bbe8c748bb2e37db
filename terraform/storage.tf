# The archive bucket (transcripts, recordings, call.json) and the bucket holding function source.

locals {
  # Object Versioning and a bucket retention policy are mutually exclusive in Cloud Storage.
  archive_versioning = var.archive.retention_days == 0
}

resource "google_storage_bucket" "archive" {
  # checkov:skip=CKV_GCP_62:Object access is recorded by Cloud Audit Logs, not legacy usage logs: Data Access logs for storage.googleapis.com, enabled by audit.tf (enable_data_access_audit_logs, default true) or, when that is false, by an audit config managed outside this module.
  project       = var.project_id
  name          = local.archive_bucket
  location      = local.bucket_location
  storage_class = "STANDARD"
  labels        = local.labels
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Cloud Storage refuses Object Versioning together with a retention policy; the retention policy
  # then protects every object from deletion and replacement instead.
  versioning {
    enabled = local.archive_versioning
  }

  dynamic "encryption" {
    for_each = var.archive.kms_key_name == null ? [] : [var.archive.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "retention_policy" {
    for_each = var.archive.retention_days > 0 ? [var.archive.retention_days] : []
    content {
      retention_period = retention_policy.value * 86400
      is_locked        = var.archive.retention_locked
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.archive.nearline_after_days > 0 ? [var.archive.nearline_after_days] : []
    content {
      action {
        type          = "SetStorageClass"
        storage_class = "NEARLINE"
      }
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["STANDARD"]
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.archive.coldline_after_days > 0 ? [var.archive.coldline_after_days] : []
    content {
      action {
        type          = "SetStorageClass"
        storage_class = "COLDLINE"
      }
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["STANDARD", "NEARLINE"]
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.archive.delete_after_days > 0 ? [var.archive.delete_after_days] : []
    content {
      action {
        type = "Delete"
      }
      condition {
        age = lifecycle_rule.value
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = local.archive_versioning ? [var.archive.noncurrent_delete_after_days] : []
    content {
      action {
        type = "Delete"
      }
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.archive_cmek]
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62:Holds only the functions' source zips (no customer data); object access is recorded by the same Data Access audit logs as the archive bucket (audit.tf, enable_data_access_audit_logs).
  project       = var.project_id
  name          = local.source_bucket
  location      = local.bucket_location
  storage_class = "STANDARD"
  labels        = local.labels
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # Source zips are content-addressed; old ones are only needed to roll back a deploy.
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
  }

  depends_on = [google_project_service.apis]
}
