# terraform -chdir=infra apply -var-file=stages/prod.tfvars
# Must agree with serverless.yaml's stages.prod (retailfn validate checks bucket_prefix).
stage              = "prod"
region             = "eu-de"
resource_group_id  = "REPLACE-with-your-resource-group-id"
bucket_prefix      = "retailfn-prod"
event_streams_plan = "enterprise-3nodes-2tb"
image_registry     = "private.de.icr.io/retailfn"
image_tag          = "latest"
max_instances      = 50
