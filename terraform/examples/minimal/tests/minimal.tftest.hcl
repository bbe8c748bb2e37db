# The example wires its inputs into the module (plan-only, mock providers).

mock_provider "google" {
  mock_data "google_project" {
    defaults = {
      number = "123456789012"
    }
  }
}

mock_provider "time" {}

mock_provider "archive" {
  mock_data "archive_file" {
    defaults = {
      output_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
      output_path   = "/dev/null"
    }
  }
}

variables {
  project_id = "ttma-example-project"
}

run "first_apply" {
  command = plan

  variables {
    deploy_functions          = false
    archive_delete_after_days = 730
    consumers = {
      n8n = { push_endpoint = "https://n8n.example.com/webhook/ttma" }
    }
  }

  assert {
    condition     = output.webhook_url == null && output.webhook_secret_id == "ttma-webhook-secret" && output.call_events_topic == "ttma-call-events"
    error_message = "The first apply creates the secrets and the topic but no function."
  }

  assert {
    condition     = output.archive_bucket == "ttma-example-project-ttma-archive"
    error_message = "The archive bucket gets the module's default name."
  }
}
