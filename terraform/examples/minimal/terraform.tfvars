# Minimal deployment: terraform -chdir=terraform apply -var-file=examples/minimal/terraform.tfvars
project_id = "my-project-id"
region     = "europe-west1"

# Where alerts go (create channels in Cloud Monitoring first); empty = alerts visible in the console only.
notification_channels = []

# Event-driven downstream systems, e.g. an n8n Webhook node (POST, raw JSON body):
# consumers = {
#   n8n = {
#     push_endpoint = "https://n8n.example.com/webhook/ttma-call-ended"
#     filter        = "attributes.event = \"call.ended\""
#   }
# }
