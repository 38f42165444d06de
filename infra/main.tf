# retailfn on IBM Cloud: the service instances, the Code Engine project and the generated module.
#
# Hand-written here: instances (Event Streams, COS, the state database), IAM, App ID, secrets,
# variables, outputs.
# Generated (infra/generated/, `retailfn infra generate`): topics, buckets, one app per function,
# the Code Engine subscriptions that match each trigger of serverless.yaml.
terraform {
  required_version = ">= 1.5"
  required_providers {
    ibm = {
      source  = "IBM-Cloud/ibm"
      version = "~> 1.70"
    }
  }
}

provider "ibm" {
  region = var.region
}

locals {
  name = "retailfn-${var.stage}"
}

resource "ibm_resource_instance" "event_streams" {
  name              = "${local.name}-event-streams"
  service           = "messagehub"
  plan              = var.event_streams_plan
  location          = var.region
  resource_group_id = var.resource_group_id
  service_endpoints = var.service_endpoints
  tags              = ["retailfn", var.stage]
}

resource "ibm_resource_instance" "cos" {
  name              = "${local.name}-cos"
  service           = "cloud-object-storage"
  plan              = "standard"
  location          = "global"
  resource_group_id = var.resource_group_id
  tags              = ["retailfn", var.stage]
}

# The state database (shared/integration/state; RETAILFN_DATABASE_URL): PostgreSQL, TLS only.
# Its credential for the apps and their secret are in secrets.tf; sizes are per member.
resource "ibm_database" "state" {
  name              = "${local.name}-state"
  service           = "databases-for-postgresql"
  plan              = var.database_plan
  version           = var.database_version
  location          = var.region
  resource_group_id = var.resource_group_id
  service_endpoints = var.database_service_endpoints
  tags              = ["retailfn", var.stage]

  # What the apps' pools may open at most (README, "PostgreSQL / IBM Cloud Databases"); 15 of
  # them are kept for the service's superuser.
  configuration = jsonencode({ max_connections = var.database_max_connections })

  group {
    group_id = "member"
    members {
      allocation_count = var.database_members
    }
    memory {
      allocation_mb = var.database_memory_mb
    }
    disk {
      allocation_mb = var.database_disk_mb
    }
    cpu {
      allocation_count = var.database_cpu_count
    }
  }

  # Creating an instance takes 30 to 45 minutes (the provider's page), near its 60-minute default.
  timeouts {
    create = "120m"
    update = "120m"
    delete = "15m"
  }
}

resource "ibm_code_engine_project" "retailfn" {
  name              = local.name
  resource_group_id = var.resource_group_id
}

# Topics, buckets (with per-bucket Writer policies), one app per function and the subscriptions.
module "functions" {
  source = "./generated"

  stage                     = var.stage
  region                    = var.region
  bucket_prefix             = var.bucket_prefix
  event_streams_instance_id = ibm_resource_instance.event_streams.id
  cos_instance_id           = ibm_resource_instance.cos.id
  cos_instance_guid         = ibm_resource_instance.cos.guid
  functions_service_id      = ibm_iam_service_id.functions.id
  project_id                = ibm_code_engine_project.retailfn.project_id
  image_registry            = var.image_registry
  image_tag                 = var.image_tag
  image_secret              = var.registry_api_key == "" ? null : ibm_code_engine_secret.registry[0].name
  max_instances             = var.max_instances
  platform_config_map       = ibm_code_engine_config_map.platform.name
  event_streams_secret      = ibm_code_engine_secret.event_streams.name
  cos_secret                = ibm_code_engine_secret.cos.name
  database_secret           = ibm_code_engine_secret.database.name
  kafka_subscription_secret = ibm_code_engine_secret.kafka_subscription.name
  archive_after_days        = var.archive_after_days
  dead_letter_expiry_days   = var.dead_letter_expiry_days
}
