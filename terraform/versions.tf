terraform {
  # 1.7: mock_provider in `terraform test`; import blocks and validations as used here.
  required_version = ">= 1.7"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3" # 2.4: glob patterns in archive_file excludes
    }
  }
}
