terraform {
  required_version = ">= 1.7"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    # Used inside the module; declared here so the lock file of this root pins them too.
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.5, < 3"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
