# ---------------------------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project that receives the pipeline."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region for the functions, Cloud Scheduler, Artifact Registry and (by default) the buckets and Firestore."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (topics, functions, service accounts, buckets). The default gives the topic `ttma-call-events`, the name the code defaults to."
  type        = string
  default     = "ttma"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 lowercase letters, digits or hyphens, starting with a letter (service account IDs are limited to 30 characters)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google Cloud APIs the pipeline needs (google_project_service). Set to false when a platform team enables APIs centrally."
  type        = bool
  default     = true
}

variable "deploy_functions" {
  description = <<-EOT
    Deploy the four functions and what points at them (their push subscriptions, the scheduler
    job, the invoker grants). The first apply of a new deployment sets it to false: everything
    else is created, including the two empty secrets; you then add the secret values with gcloud
    (they never pass through Terraform) and apply again with the default, true. See docs/deploy.md.
  EOT
  type        = bool
  default     = true
  nullable    = false
}

variable "iam_propagation_seconds" {
  description = "How long the functions wait after the IAM grants they start with are created or replaced (IAM is eventually consistent; an instance that cannot read its secret aborts). 0 waits not at all."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600 && floor(var.iam_propagation_seconds) == var.iam_propagation_seconds
    error_message = "iam_propagation_seconds must be whole seconds between 0 and 600."
  }
}

# ---------------------------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------------------------

variable "create_firestore_database" {
  description = "Create the Firestore native database named by firestore_database. Set to false to use an existing one (a project's `(default)` database often exists already)."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database ID used by the functions (FIRESTORE_DATABASE)."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits or hyphens."
  }
}

variable "firestore_location" {
  description = "Location of a created Firestore database (a region such as europe-west1 or a multi-region such as eur3 / nam5). Null uses var.region. Cannot be changed after creation."
  type        = string
  default     = null
}

variable "firestore_delete_protection" {
  description = "Enable delete protection on a created Firestore database."
  type        = bool
  default     = true
}

variable "firestore_deletion_policy" {
  description = "What `terraform destroy` does to a created Firestore database: ABANDON (keep it, the default) or DELETE (needs firestore_delete_protection = false)."
  type        = string
  default     = "ABANDON"

  validation {
    condition     = contains(["ABANDON", "DELETE"], var.firestore_deletion_policy)
    error_message = "firestore_deletion_policy must be ABANDON or DELETE."
  }
}

variable "deliveries_collection" {
  description = "Firestore collection holding one record per webhook delivery (DELIVERIES_COLLECTION); its `expireAt` field gets a TTL policy."
  type        = string
  default     = "ttma_deliveries"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.deliveries_collection))
    error_message = "deliveries_collection must be a simple collection ID (letters, digits, _ and -)."
  }
}

variable "calls_collection" {
  description = "Firestore collection holding the queryable call index (CALLS_COLLECTION)."
  type        = string
  default     = "ttma_calls"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.calls_collection))
    error_message = "calls_collection must be a simple collection ID (letters, digits, _ and -)."
  }
}

variable "delivery_ttl_days" {
  description = "Days a delivery record is kept for de-duplication before the Firestore TTL policy deletes it (DELIVERY_TTL_DAYS)."
  type        = number
  default     = 30

  validation {
    condition     = var.delivery_ttl_days >= 1 && var.delivery_ttl_days <= 3650 && floor(var.delivery_ttl_days) == var.delivery_ttl_days
    error_message = "delivery_ttl_days must be a whole number between 1 and 3650."
  }
}

# ---------------------------------------------------------------------------------------------
# Function behaviour (non-secret settings)
# ---------------------------------------------------------------------------------------------

variable "signature_tolerance_seconds" {
  description = "Accepted clock skew of a webhook signature timestamp, in both directions (TTMA_SIGNATURE_TOLERANCE_SECONDS)."
  type        = number
  default     = 300

  validation {
    condition     = var.signature_tolerance_seconds >= 1 && var.signature_tolerance_seconds <= 3600
    error_message = "signature_tolerance_seconds must be between 1 and 3600."
  }
}

variable "max_body_bytes" {
  description = "Largest webhook body ingest accepts (MAX_BODY_BYTES); must stay below Pub/Sub's 10 MB message limit."
  type        = number
  default     = 4194304

  validation {
    condition     = var.max_body_bytes >= 1024 && var.max_body_bytes <= 9934464
    error_message = "max_body_bytes must be between 1024 and 9934464 (10 MB minus 64 KiB of headroom)."
  }
}

variable "recording_wait_seconds" {
  description = "How long after a call ended archive_recording keeps retrying a recording that is not available yet (RECORDING_WAIT_SECONDS)."
  type        = number
  default     = 900

  validation {
    condition     = var.recording_wait_seconds >= 0 && var.recording_wait_seconds <= 604800
    error_message = "recording_wait_seconds must be between 0 and 604800 (7 days)."
  }
}

variable "reconcile_lookback_hours" {
  description = "How far back reconcile lists calls from the vendor API (RECONCILE_LOOKBACK_HOURS)."
  type        = number
  default     = 24

  validation {
    condition     = var.reconcile_lookback_hours >= 1 && var.reconcile_lookback_hours <= 720
    error_message = "reconcile_lookback_hours must be between 1 and 720."
  }
}

variable "reconcile_grace_seconds" {
  description = "Calls that ended less than this long ago are left to their webhook by reconcile (RECONCILE_GRACE_SECONDS): the vendor waits up to 60 s for the recording and retries 5 times. See docs/architecture.md."
  type        = number
  default     = 900

  validation {
    condition     = var.reconcile_grace_seconds >= 0 && var.reconcile_grace_seconds <= 86400 && floor(var.reconcile_grace_seconds) == var.reconcile_grace_seconds
    error_message = "reconcile_grace_seconds must be whole seconds between 0 and 86400."
  }
}

variable "ingest_budget_seconds" {
  description = "Time budget of one webhook request for Firestore + publish (INGEST_BUDGET_SECONDS); past it ingest answers 503 and releases the claim. A claim's lease is this + 5 s. See docs/architecture.md."
  type        = number
  default     = 5

  validation {
    condition     = var.ingest_budget_seconds >= 1 && var.ingest_budget_seconds <= 30 && floor(var.ingest_budget_seconds) == var.ingest_budget_seconds
    error_message = "ingest_budget_seconds must be whole seconds between 1 and 30."
  }
}

variable "ttma_api_base_url" {
  description = "Base URL of the TTMA API (TTMA_API_BASE_URL)."
  type        = string
  default     = "https://api.talktomyagent.io"

  validation {
    condition     = can(regex("^https://[^\\s/]+(/[^\\s]*)?$", var.ttma_api_base_url))
    error_message = "ttma_api_base_url must be an https:// URL."
  }
}

variable "scaling" {
  description = <<-EOT
    Instance counts of the functions. Every attribute is optional:
    - ingest_min_instances: warm ingest instances. The default 1 keeps cold starts (about 1 s of
      imports and client set-up) off the vendor's webhook, whose 5 retries are all a delivery
      gets; 0 scales to zero and saves the idle instance's cost.
    - ingest_max_instances: at most this many ingest instances (each serves 20 requests at once).
    - subscriber_max_instances: at most this many instances of each archiver (caps the load on the
      TTMA API and Cloud Storage).
  EOT
  type = object({
    ingest_min_instances     = optional(number, 1)
    ingest_max_instances     = optional(number, 20)
    subscriber_max_instances = optional(number, 10)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.scaling.ingest_min_instances >= 0 && var.scaling.ingest_min_instances <= 100
    error_message = "scaling.ingest_min_instances must be between 0 and 100."
  }

  validation {
    condition     = var.scaling.ingest_max_instances >= 1 && var.scaling.ingest_max_instances <= 1000 && var.scaling.ingest_max_instances >= var.scaling.ingest_min_instances
    error_message = "scaling.ingest_max_instances must be between 1 and 1000 and not below ingest_min_instances."
  }

  validation {
    condition     = var.scaling.subscriber_max_instances >= 1 && var.scaling.subscriber_max_instances <= 1000
    error_message = "scaling.subscriber_max_instances must be between 1 and 1000."
  }
}

# ---------------------------------------------------------------------------------------------
# Secrets (values are never passed to Terraform: versions are added out of band, see docs/deploy.md)
# ---------------------------------------------------------------------------------------------

variable "secrets" {
  description = <<-EOT
    The three Secret Manager secrets (values are never passed to Terraform: add versions with
    gcloud, see docs/deploy.md). Every attribute is optional:
    - webhook_secret_version: version injected into ingest as TTMA_WEBHOOK_SECRET. Pin a number
      so a new version takes effect only through `terraform apply` (rotation, docs/deploy.md).
    - webhook_secret_previous_version: version of the same secret injected as
      TTMA_WEBHOOK_SECRET_PREVIOUS while a rotation is in progress; null injects nothing.
    - api_key_version: version of the TTMA API key injected as TTMA_API_KEY into the archivers
      and reconcile.
    - phone_hash_key_version: version of the phone hash key injected as TTMA_PHONE_HASH_KEY into
      the archivers (at least 32 characters; never rotate it: calls indexed under the old key
      could no longer be found by `ttma-relay forget --phone`).
    - replica_locations: regions the secrets are stored in (user-managed replication), e.g.
      ["europe-west1"]; required where the organisation policy gcp.resourceLocations restricts
      locations, which automatic replication violates. Empty (the default) replicates automatically.
  EOT
  type = object({
    webhook_secret_version          = optional(string, "1")
    webhook_secret_previous_version = optional(string)
    api_key_version                 = optional(string, "1")
    phone_hash_key_version          = optional(string, "1")
    replica_locations               = optional(list(string), [])
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for v in [var.secrets.webhook_secret_version, var.secrets.api_key_version, var.secrets.phone_hash_key_version] : can(regex("^([1-9][0-9]*|latest)$", v))])
    error_message = "secrets.webhook_secret_version, secrets.api_key_version and secrets.phone_hash_key_version must be a version number or \"latest\"."
  }

  validation {
    condition     = var.secrets.webhook_secret_previous_version == null || can(regex("^[1-9][0-9]*$", coalesce(var.secrets.webhook_secret_previous_version, "x")))
    error_message = "secrets.webhook_secret_previous_version must be null or a version number (never \"latest\": it would equal the current secret)."
  }

  validation {
    condition     = alltrue([for l in var.secrets.replica_locations : can(regex("^[a-z]+-[a-z]+[0-9]+$", l))]) && length(distinct(var.secrets.replica_locations)) == length(var.secrets.replica_locations)
    error_message = "secrets.replica_locations must be distinct regions such as europe-west1."
  }
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------------------------

variable "topic_message_retention_duration" {
  description = "How long the call-events topic keeps published messages, so subscriptions can be seeked back for a replay (e.g. \"604800s\"). Null keeps none."
  type        = string
  default     = "604800s"

  validation {
    condition     = var.topic_message_retention_duration == null || can(regex("^[0-9]+s$", coalesce(var.topic_message_retention_duration, "x")))
    error_message = "topic_message_retention_duration must be null or a duration in seconds such as \"604800s\"."
  }
}

variable "max_delivery_attempts" {
  description = "Delivery attempts of a push subscription before the message goes to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (the Pub/Sub limits)."
  }
}

variable "retry_minimum_backoff" {
  description = "Minimum back-off between push redeliveries."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_minimum_backoff)) && tonumber(trimsuffix(var.retry_minimum_backoff, "s")) <= 600
    error_message = "retry_minimum_backoff must be a duration in seconds between \"0s\" and \"600s\"."
  }
}

variable "retry_maximum_backoff" {
  description = "Maximum back-off between push redeliveries."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_maximum_backoff)) && tonumber(trimsuffix(var.retry_maximum_backoff, "s")) <= 600
    error_message = "retry_maximum_backoff must be a duration in seconds up to \"600s\"."
  }
}

variable "dead_letter_retention_duration" {
  description = "How long dead letters are kept in the dead-letter pull subscription for inspection and replay (at most 31 days)."
  type        = string
  default     = "2678400s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention_duration)) && tonumber(trimsuffix(var.dead_letter_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention_duration, "s")) <= 2678400
    error_message = "dead_letter_retention_duration must be between \"600s\" and \"2678400s\" (31 days)."
  }
}

variable "consumers" {
  description = <<-EOT
    Event-driven downstream systems (an n8n webhook, another service). Each entry becomes a push
    subscription on the call-events topic that delivers the vendor's JSON body unwrapped (the same
    body as the TTMA webhook; in an n8n Webhook node `$json.body.data.endedReason`) with the
    message attributes as HTTP headers (Content-Type: application/json among them), an OIDC token
    from a dedicated service account that holds no roles, a retry back-off and a dead-letter
    policy. `filter` is a Pub/Sub filter on attributes, for example
    `attributes.endedReason = "callerHangup"`; it cannot be changed after creation. See
    docs/consumers.md.
  EOT
  type = map(object({
    push_endpoint         = string
    filter                = optional(string)
    audience              = optional(string)
    ack_deadline_seconds  = optional(number, 60)
    max_delivery_attempts = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k, _ in var.consumers : can(regex("^[a-z][a-z0-9-]{0,39}$", k))])
    error_message = "consumers keys must be 1-40 lowercase letters, digits or hyphens, starting with a letter."
  }

  validation {
    condition     = alltrue([for c in values(var.consumers) : startswith(c.push_endpoint, "https://")])
    error_message = "Every consumers[*].push_endpoint must be an https:// URL."
  }

  validation {
    condition     = alltrue([for c in values(var.consumers) : c.ack_deadline_seconds >= 10 && c.ack_deadline_seconds <= 600])
    error_message = "consumers[*].ack_deadline_seconds must be between 10 and 600."
  }

  validation {
    condition     = alltrue([for c in values(var.consumers) : c.max_delivery_attempts == null || try(c.max_delivery_attempts >= 5 && c.max_delivery_attempts <= 100, false)])
    error_message = "consumers[*].max_delivery_attempts must be between 5 and 100."
  }
}

variable "bigquery_subscription_enabled" {
  description = "Also stream every call event into a BigQuery table (dataset + table created here) through a BigQuery subscription, for analytics. Off by default."
  type        = bool
  default     = false
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset (e.g. EU, US or a region). Null uses var.region."
  type        = string
  default     = null
}

variable "bigquery_dataset_id" {
  description = "ID of the BigQuery dataset created when bigquery_subscription_enabled is true."
  type        = string
  default     = "ttma_call_events"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1000}$", var.bigquery_dataset_id))
    error_message = "bigquery_dataset_id must contain only letters, digits and underscores."
  }
}

# ---------------------------------------------------------------------------------------------
# Archive bucket
# ---------------------------------------------------------------------------------------------

variable "archive" {
  description = <<-EOT
    The archive bucket (transcripts, recordings, call.json). Every attribute is optional:
    - bucket_name: null gives "<project_id>-<name_prefix>-archive" (ARCHIVE_BUCKET).
    - location: region, dual- or multi-region of the archive and function-source buckets; null uses var.region.
    - nearline_after_days / coldline_after_days: move objects to NEARLINE / COLDLINE this many days after creation; 0 disables the rule.
    - delete_after_days: delete objects this many days after creation (a data-retention policy for PII; default 365); the
      index documents expire as long after the call was first indexed (CALL_RETENTION_DAYS, a Firestore TTL policy).
      0 keeps both forever.
    - retention_days: bucket retention policy, objects cannot be deleted or replaced before this age; 0 sets none.
      Cloud Storage does not allow a retention policy and Object Versioning on the same bucket, so
      versioning is on only while retention_days is 0 (a retention policy already protects every
      object from deletion and replacement).
    - retention_locked: lock the retention policy. IRREVERSIBLE: a locked policy can never be shortened or removed.
    - noncurrent_delete_after_days: with versioning on, delete noncurrent (replaced or deleted) versions this many days after they became noncurrent.
    - kms_key_name: Cloud KMS key (projects/.../cryptoKeys/...) used as the bucket's default key (CMEK); the Cloud Storage service agent is granted encrypt/decrypt on it.
  EOT
  type = object({
    bucket_name                  = optional(string)
    location                     = optional(string)
    nearline_after_days          = optional(number, 30)
    coldline_after_days          = optional(number, 180)
    delete_after_days            = optional(number, 365)
    retention_days               = optional(number, 0)
    retention_locked             = optional(bool, false)
    noncurrent_delete_after_days = optional(number, 30)
    kms_key_name                 = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.archive.bucket_name == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", coalesce(var.archive.bucket_name, "x")))
    error_message = "archive.bucket_name must be a valid bucket name (3-63 lowercase letters, digits, -, _ and .)."
  }

  validation {
    condition = alltrue([for d in [var.archive.nearline_after_days, var.archive.coldline_after_days, var.archive.delete_after_days] :
    d >= 0 && d <= 36500 && floor(d) == d])
    error_message = "archive.nearline_after_days, coldline_after_days and delete_after_days must be whole days between 0 (off) and 36500."
  }

  validation {
    condition     = var.archive.nearline_after_days == 0 || var.archive.coldline_after_days == 0 || var.archive.coldline_after_days > var.archive.nearline_after_days
    error_message = "archive.coldline_after_days must be later than archive.nearline_after_days."
  }

  validation {
    condition     = var.archive.retention_days >= 0 && var.archive.retention_days <= 36500 && floor(var.archive.retention_days) == var.archive.retention_days
    error_message = "archive.retention_days must be whole days between 0 (no retention policy) and 36500."
  }

  validation {
    condition     = !var.archive.retention_locked || var.archive.retention_days > 0
    error_message = "archive.retention_locked needs archive.retention_days > 0."
  }

  validation {
    condition     = var.archive.delete_after_days == 0 || var.archive.delete_after_days >= var.archive.retention_days
    error_message = "archive.delete_after_days must not be shorter than archive.retention_days (the lifecycle rule could never delete)."
  }

  validation {
    condition     = var.archive.noncurrent_delete_after_days >= 1
    error_message = "archive.noncurrent_delete_after_days must be at least 1."
  }

  validation {
    condition     = var.archive.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.archive.kms_key_name, "x")))
    error_message = "archive.kms_key_name must be null or a key name projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete the archive and source buckets with their objects. Keep false in production; a retention policy still blocks deletion of young objects."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------
# Scheduling and monitoring
# ---------------------------------------------------------------------------------------------

variable "reconcile_schedule" {
  description = "Cron schedule of the Cloud Scheduler job that calls reconcile."
  type        = string
  default     = "17 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.reconcile_schedule))) == 5
    error_message = "reconcile_schedule must be a five-field cron expression."
  }
}

variable "reconcile_time_zone" {
  description = "Time zone of reconcile_schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) the alert policies notify."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels entries must look like projects/P/notificationChannels/N."
  }
}

variable "ingest_5xx_ratio_threshold" {
  description = "Alert when more than this fraction of ingest responses are 5xx over 5 minutes (503 means \"retry later\", so a short burst is expected under Pub/Sub or Firestore trouble)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.ingest_5xx_ratio_threshold > 0 && var.ingest_5xx_ratio_threshold < 1
    error_message = "ingest_5xx_ratio_threshold must be between 0 and 1 (exclusive)."
  }
}

# ---------------------------------------------------------------------------------------------
# Source
# ---------------------------------------------------------------------------------------------

variable "function_source_dir" {
  description = "Directory zipped as the functions' source (main.py, requirements.txt and the packages). Null uses the repository root (the parent of this module)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Alerts and data governance (monitoring.tf, bigquery.tf, audit.tf)
# ---------------------------------------------------------------------------------------------

variable "alerts" {
  description = <<-EOT
    Alert thresholds. Every attribute is optional:
    - backlog_age_seconds: alert when the oldest unacknowledged message of a push (or BigQuery)
      subscription is older than this. Default 30 min: above the longest legitimate wait (a
      recording not ready yet is retried for recording_wait_seconds, 15 min, plus one maximum
      back-off, 10 min) and below the ~40 min after which 10 failed attempts dead-letter a message.
      archive_recording's threshold is never below recording_wait_seconds + retry_maximum_backoff + 5 min.
    - ingest_500_min_count: alert when ingest answers 500 (an unhandled exception: a bug) at least
      this many times in 5 minutes. Default 1.
    - ingest_5xx_min_count, ingest_5xx_sustain_seconds: the 5xx alert needs, for sustain_seconds,
      both ingest_5xx_ratio_threshold exceeded and at least min_count 5xx per 5 minutes, so a
      single 503 (backend trouble the vendor retries) never pages. Defaults 10 and 600 (10 min).
    - reconcile_failed_attempts, reconcile_window_seconds: alert when this many Cloud Scheduler
      attempts to run reconcile fail within the window. Defaults 3 in 2 h: with the hourly
      schedule and one retry per run, one failed run (2 attempts) is tolerated (the next run looks
      back reconcile_lookback_hours), a second failing run alerts.
  EOT
  type = object({
    backlog_age_seconds        = optional(number, 1800)
    ingest_500_min_count       = optional(number, 1)
    ingest_5xx_min_count       = optional(number, 10)
    ingest_5xx_sustain_seconds = optional(number, 600)
    reconcile_failed_attempts  = optional(number, 3)
    reconcile_window_seconds   = optional(number, 7200)
  })
  default  = {}
  nullable = false

  validation {
    # Cloud Monitoring: whole minutes; far below the push subscriptions' 7-day message retention.
    condition     = var.alerts.backlog_age_seconds >= 300 && var.alerts.backlog_age_seconds <= 86400 && var.alerts.backlog_age_seconds % 60 == 0
    error_message = "alerts.backlog_age_seconds must be whole minutes between 300 (5 min) and 86400 (1 day)."
  }

  validation {
    condition = alltrue([for n in [var.alerts.ingest_500_min_count, var.alerts.ingest_5xx_min_count, var.alerts.reconcile_failed_attempts] :
    n >= 1 && n <= 10000 && floor(n) == n])
    error_message = "alerts.ingest_500_min_count, ingest_5xx_min_count and reconcile_failed_attempts must be whole numbers between 1 and 10000."
  }

  validation {
    # A duration (how long the condition must hold) is whole minutes; at most a day.
    condition     = var.alerts.ingest_5xx_sustain_seconds >= 0 && var.alerts.ingest_5xx_sustain_seconds <= 86400 && var.alerts.ingest_5xx_sustain_seconds % 60 == 0
    error_message = "alerts.ingest_5xx_sustain_seconds must be whole minutes between 0 and 86400."
  }

  validation {
    # An alignment period (the rolling window) is whole minutes, at least 60 s, at most a day.
    condition     = var.alerts.reconcile_window_seconds >= 600 && var.alerts.reconcile_window_seconds <= 86400 && var.alerts.reconcile_window_seconds % 60 == 0
    error_message = "alerts.reconcile_window_seconds must be whole minutes between 600 (10 min) and 86400 (1 day)."
  }
}

variable "enable_data_access_audit_logs" {
  description = <<-EOT
    Enable Cloud Audit Logs Data Access logs (ADMIN_READ, DATA_READ, DATA_WRITE) for
    storage.googleapis.com in the project, so every read of an archived recording or transcript
    (PII) is recorded; this is the access log the buckets rely on instead of legacy usage logs.
    BigQuery writes its Data Access logs always. Default true. Set false when audit configs are
    managed centrally (an organization or folder audit config is inherited either way; a
    project-level config for storage.googleapis.com managed elsewhere would fight this one,
    which is authoritative for that service). Note: the setting is project-wide (every bucket,
    billed as log ingestion), it is removed again by `terraform destroy`, and with it Cloud
    Storage refuses cookie-authenticated browser downloads (storage.cloud.google.com links).
  EOT
  type        = bool
  default     = true
  nullable    = false
}

variable "bigquery_retention_days" {
  description = "Days a call event (PII) is kept in the BigQuery table: each daily partition of publish_time is deleted this long after its day (time_partitioning.expiration_ms, and the dataset's default_partition_expiration_ms). BigQuery then keeps deleted data for the dataset's time-travel window (up to 7 days) and 7 days of fail-safe."
  type        = number
  default     = 365
  nullable    = false

  validation {
    condition     = var.bigquery_retention_days >= 1 && var.bigquery_retention_days <= 3650 && floor(var.bigquery_retention_days) == var.bigquery_retention_days
    error_message = "bigquery_retention_days must be whole days between 1 and 3650."
  }
}

variable "bigquery_readers" {
  description = "Who may query the BigQuery call events (PII): IAM members such as \"group:analysts@example.com\", \"user:ana@example.com\" or \"serviceAccount:report@p.iam.gserviceaccount.com\", granted READER on the dataset. The dataset's access list is otherwise only the project owners: no implicit project-wide readers or writers."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for m in var.bigquery_readers : can(regex("^(group|user|serviceAccount):[^@\\s]+@[^@\\s]+$", m))])
    error_message = "bigquery_readers entries must be group:EMAIL, user:EMAIL or serviceAccount:EMAIL (no allUsers, allAuthenticatedUsers or domains)."
  }
}
