terraform {
  # 1.7: mock_provider in `terraform test`; import blocks and validations as used here.
  required_version = ">= 1.7"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    # 2.5: archive_file excludes are doublestar globs (2.4 compares exact names only: "**/.?*"
    # and "**/__pycache__" would exclude nothing, and .git and .venv would be deployed).
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.5, < 3"
    }
  }
}
