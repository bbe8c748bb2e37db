# Secret Manager secrets. Terraform creates the secrets, their access grants and the function
# references; it never sees a secret value. Versions are added out of band with
# `gcloud secrets versions add` (docs/deploy.md), so no value is ever in the plan or the state.
#
# The phone hash key (phone_hash_key) is one secret version read by the archivers.
#
# The webhook secret holds the current signing secret and, during a rotation, the previous one as
# an older version of the same secret: TTMA_WEBHOOK_SECRET and TTMA_WEBHOOK_SECRET_PREVIOUS
# reference two pinned versions (var.secrets.webhook_secret_version / webhook_secret_previous_version).

resource "google_secret_manager_secret" "webhook" {
  project   = var.project_id
  secret_id = "${local.prefix}-webhook-secret"
  labels    = local.labels

  replication {
    dynamic "auto" {
      for_each = length(var.secrets.replica_locations) == 0 ? [1] : []
      content {}
    }

    dynamic "user_managed" {
      for_each = length(var.secrets.replica_locations) == 0 ? [] : [var.secrets.replica_locations]
      content {
        dynamic "replicas" {
          for_each = user_managed.value
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "api_key" {
  project   = var.project_id
  secret_id = "${local.prefix}-api-key"
  labels    = local.labels

  replication {
    dynamic "auto" {
      for_each = length(var.secrets.replica_locations) == 0 ? [1] : []
      content {}
    }

    dynamic "user_managed" {
      for_each = length(var.secrets.replica_locations) == 0 ? [] : [var.secrets.replica_locations]
      content {
        dynamic "replicas" {
          for_each = user_managed.value
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# The key of the index's phone-number hashes (TTMA_PHONE_HASH_KEY, at least 32 characters): the
# archivers write HMAC-SHA256(key, number) instead of the other party's number, and
# `ttma-relay forget --phone` computes the same hash to find that person's calls.
resource "google_secret_manager_secret" "phone_hash_key" {
  project   = var.project_id
  secret_id = "${local.prefix}-phone-hash-key"
  labels    = local.labels

  replication {
    dynamic "auto" {
      for_each = length(var.secrets.replica_locations) == 0 ? [1] : []
      content {}
    }

    dynamic "user_managed" {
      for_each = length(var.secrets.replica_locations) == 0 ? [] : [var.secrets.replica_locations]
      content {
        dynamic "replicas" {
          for_each = user_managed.value
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}
