# Mock values of the google provider shared by every test file (mock_provider source).

mock_data "google_project" {
  defaults = {
    number = "123456789012"
  }
}

# The Cloud Storage agent's data source is read during apply (it waits for the APIs); this gives
# it, already at plan, the member Google returns: service-<project number>@gs-project-accounts.
override_data {
  target          = data.google_storage_project_service_account.this
  override_during = plan
  values = {
    member = "serviceAccount:service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
  }
}
