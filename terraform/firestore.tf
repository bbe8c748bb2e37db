# Firestore native database (or an existing one) and the TTL policies on `expireAt` of the
# delivery records and of the index.

resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = local.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.firestore_deletion_policy

  depends_on = [google_project_service.apis]
}

# Firestore deletes a delivery record once its `expireAt` has passed (DELIVERY_TTL_DAYS after the
# claim). The empty index_config turns off single-field indexes on the field, as recommended for
# TTL fields holding ever-increasing timestamps.
resource "google_firestore_field" "delivery_ttl" {
  project    = var.project_id
  database   = local.firestore_database
  collection = var.deliveries_collection
  field      = "expireAt"

  ttl_config {}

  index_config {}

  depends_on = [google_firestore_database.this, google_project_service.apis]
}

# Firestore deletes an index document once its `expireAt` has passed: archive.delete_after_days
# after the call was first indexed (CALL_RETENTION_DAYS), as the bucket's delete rule does for
# its objects. With delete_after_days = 0 the archivers write no expireAt and nothing expires.
resource "google_firestore_field" "calls_ttl" {
  project    = var.project_id
  database   = local.firestore_database
  collection = var.calls_collection
  field      = "expireAt"

  ttl_config {}

  index_config {}

  depends_on = [google_firestore_database.this, google_project_service.apis]
}
