#!/usr/bin/env bash
# Checks the Terraform module in terraform/: formatting, validation and `terraform test` (with
# mock providers) against the newest and the oldest google provider the module admits, the
# schema lint, and a checkov scan that must report zero failed checks.
#
# Offline (this project's CI): uses ../shared/tools/tf-offline when present. Elsewhere it falls
# back to plain Terraform, which downloads the providers from the registry.
#
# Usage: scripts/check_terraform.sh   (from anywhere; exits non-zero on the first failure)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULE=terraform
TF_OFFLINE=$(dirname "$ROOT")/shared/tools/tf-offline/tf-offline
# google provider versions to validate against: the newest tested and the lower bound of
# terraform/versions.tf (">= 6.50, < 9").
GOOGLE_VERSIONS=(8.7.0 6.50.0)

cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "terraform fmt -check"
terraform fmt -check -recursive -diff "$MODULE"

step "every checkov skip carries its reason inline"
bad_skips=$(grep -rnE 'checkov:skip=' "$MODULE" --include='*.tf' | grep -vE 'checkov:skip=CKV2?_[A-Z0-9_]+:.{20,}' || true)
if [[ -n $bad_skips ]]; then
  echo "checkov skips without a reason (use '# checkov:skip=CKV_ID:why'):" >&2
  echo "$bad_skips" >&2
  exit 1
fi

if [[ -x $TF_OFFLINE ]]; then
  for version in "${GOOGLE_VERSIONS[@]}"; do
    step "tf-offline validate (google $version): init, validate, terraform test"
    "$TF_OFFLINE" validate "$MODULE" "$version"
  done

  step "examples/minimal: the module called as a module (init, validate, terraform test)"
  (
    eval "$("$TF_OFFLINE" env)"
    export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
    example=$(mktemp -d)
    trap 'rm -rf "$example"' EXIT
    # A copy beside a copy of the module, so no .terraform/ or lock file lands in the work tree.
    cp -r "$MODULE" "$example/terraform"
    rm -rf "$example/terraform/.terraform" "$example/terraform/.terraform.lock.hcl" "$example/terraform/.build"
    cd "$example/terraform/examples/minimal"
    rm -rf .terraform .terraform.lock.hcl
    terraform init -backend=false -input=false >/dev/null
    terraform validate
    terraform test
  )

  step "tf-offline lint"
  "$TF_OFFLINE" lint "$MODULE"

  step "tf-offline checkov (zero failed checks): defaults"
  "$TF_OFFLINE" checkov "$MODULE"

  step "tf-offline checkov (zero failed checks): every option on (tests/all-options.tfvars)"
  "$TF_OFFLINE" checkov "$MODULE" --var-file "$ROOT/$MODULE/tests/all-options.tfvars"
else
  echo "tf-offline not found at $TF_OFFLINE: falling back to plain terraform (needs the registry)" >&2
  step "terraform init -backend=false && terraform validate && terraform test"
  terraform -chdir="$MODULE" init -backend=false -input=false
  terraform -chdir="$MODULE" validate
  terraform -chdir="$MODULE" test
fi

step "terraform checks passed"
