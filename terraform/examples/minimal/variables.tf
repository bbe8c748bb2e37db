variable "project_id" {
  description = "ID of the Google Cloud project that receives the pipeline."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler and (by default) the buckets and Firestore."
  type        = string
  default     = "europe-west1"
}

variable "deploy_functions" {
  description = "false for the very first apply (creates everything but the functions, including the two empty secrets); true once the secret values are added. See ../../../docs/deploy.md."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/N) the alerts notify; empty shows alerts in the console only."
  type        = list(string)
  default     = []
}

variable "consumers" {
  description = "Downstream push consumers, e.g. { n8n = { push_endpoint = \"https://n8n.example.com/webhook/ttma\" } } (see the module's consumers variable)."
  type = map(object({
    push_endpoint = string
    filter        = optional(string)
  }))
  default = {}
}

variable "archive_delete_after_days" {
  description = "Delete archived recordings, transcripts and call.json this many days after creation, and the index documents as long after indexing (0 keeps them forever)."
  type        = number
  default     = 365
}
