# Cloud Scheduler calls reconcile with an OIDC token of its own service account.

resource "google_cloud_scheduler_job" "reconcile" {
  count = var.deploy_functions ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${local.prefix}-reconcile"
  description      = "Publishes TTMA calls the webhook never delivered."
  schedule         = var.reconcile_schedule
  time_zone        = var.reconcile_time_zone
  attempt_deadline = "540s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "60s"
  }

  http_target {
    uri         = google_cloudfunctions2_function.this["reconcile"].service_config[0].uri
    http_method = "POST"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.this["scheduler"].email
      audience              = google_cloudfunctions2_function.this["reconcile"].service_config[0].uri
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_service_iam_member.scheduler_invoker]
}
