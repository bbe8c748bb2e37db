# Data Access audit logs for Cloud Storage: who read or wrote which archived object (recordings,
# transcripts: PII). Admin Activity logs are always on; Data Access logs are off by default for
# every service except BigQuery, which always writes them. The buckets' checkov CKV_GCP_62 skips
# rely on this instead of legacy usage logs.
#
# google_project_iam_audit_config is authoritative for its service in the project's IAM policy
# (it replaces any other project-level audit config for storage.googleapis.com) and is removed by
# `terraform destroy`; organization and folder audit configs are inherited on top of it.
resource "google_project_iam_audit_config" "storage" {
  count = var.enable_data_access_audit_logs ? 1 : 0

  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "ADMIN_READ"
  }
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
