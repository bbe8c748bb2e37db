# The smallest real deployment: the ttma-relay module with its defaults, called the way an
# infrastructure-as-code team calls it from its own root module.

module "ttma_relay" {
  source = "../.."

  project_id       = var.project_id
  region           = var.region
  deploy_functions = var.deploy_functions

  notification_channels = var.notification_channels
  consumers             = var.consumers

  archive = {
    delete_after_days = var.archive_delete_after_days
  }
}
