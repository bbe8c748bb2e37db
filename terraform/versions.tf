# The provider lock file (terraform/.terraform.lock.hcl) is not committed yet: it must carry the
# registry's own hashes, so it can only be made where the registry is reachable (this project's
# CI is offline; tf-offline's stub providers ignore a lock file). On such a machine:
#   terraform -chdir=terraform providers lock \
#     -platform=linux_amd64 -platform=darwin_arm64 -platform=darwin_amd64 -platform=windows_amd64
# then drop ".terraform.lock.hcl" from .gitignore and commit the file. Every later `terraform init`
# installs exactly the locked versions (the archive provider's version decides the zip's bytes,
# so its hash and whether the functions redeploy); upgrade with `init -upgrade` and lock again.
terraform {
  # 1.7: mock_provider in `terraform test`; import blocks and validations as used here.
  required_version = ">= 1.7"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 9"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1" # time_sleep with triggers
    }
    # 2.5: archive_file excludes are doublestar globs (2.4 compares exact names only: "**/.?*"
    # and "**/__pycache__" would exclude nothing, and .git and .venv would be deployed).
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.5, < 3"
    }
  }
}
