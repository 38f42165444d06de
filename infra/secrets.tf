# Credentials of the functions' service ID, handed to the apps as Code Engine secrets; the
# non-secret connection settings as a config map. Names match shared/platform/settings.py (RETAILFN_*).

# Resource keys bound to the service ID: the key's role is the least one (Reader); writes come
# from the service ID's topic and bucket policies (iam.tf, generated buckets.tf.json).
resource "ibm_resource_key" "event_streams" {
  name                 = "${local.name}-functions-event-streams"
  resource_instance_id = ibm_resource_instance.event_streams.id
  role                 = "Reader"
  parameters = {
    serviceid_crn = ibm_iam_service_id.functions.crn
  }
}

resource "ibm_resource_key" "cos" {
  name                 = "${local.name}-functions-cos"
  resource_instance_id = ibm_resource_instance.cos.id
  role                 = "Reader"
  parameters = {
    serviceid_crn = ibm_iam_service_id.functions.crn
  }
}

resource "ibm_code_engine_secret" "event_streams" {
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-event-streams"
  format     = "generic"
  data = {
    RETAILFN_KAFKA_API_KEY = ibm_resource_key.event_streams.credentials["apikey"]
  }
}

resource "ibm_code_engine_secret" "cos" {
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-cos"
  format     = "generic"
  data = {
    RETAILFN_COS_API_KEY = ibm_resource_key.cos.credentials["apikey"]
  }
}

# What `ibmcloud ce subscription kafka create --secret` expects: username "token", password the key.
resource "ibm_code_engine_secret" "kafka_subscription" {
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-kafka-subscription"
  format     = "generic"
  data = {
    username = "token"
    password = ibm_resource_key.event_streams.credentials["apikey"]
  }
}

resource "ibm_code_engine_secret" "registry" {
  count      = var.registry_api_key == "" ? 0 : 1
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-registry"
  format     = "registry"
  data = {
    server   = split("/", var.image_registry)[0]
    username = "iamapikey"
    password = var.registry_api_key
    email    = "retailfn@localhost"
  }
}

resource "ibm_code_engine_config_map" "platform" {
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-platform"
  data = {
    RETAILFN_STAGE                   = var.stage
    RETAILFN_BUS                     = "kafka"
    RETAILFN_KAFKA_BOOTSTRAP_SERVERS = join(",", module.functions.kafka_brokers_sasl)
    RETAILFN_KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    RETAILFN_KAFKA_SASL_MECHANISM    = "PLAIN"
    RETAILFN_KAFKA_SASL_USERNAME     = "token"
    RETAILFN_OBJECTSTORE             = "cos"
    RETAILFN_COS_ENDPOINT            = local.cos_endpoint
    RETAILFN_COS_REGION              = var.region
    RETAILFN_COS_INSTANCE_CRN        = ibm_resource_instance.cos.crn
    RETAILFN_BUCKET_PREFIX           = var.bucket_prefix
    RETAILFN_JWT_ISSUER              = ibm_appid_application.partners.oauth_server_url
    RETAILFN_JWT_JWKS_URL            = "${ibm_appid_application.partners.oauth_server_url}/publickeys"
    RETAILFN_JWT_AUDIENCE            = ibm_appid_application.partners.client_id
  }
}

locals {
  cos_endpoint = "https://s3.${var.region}.cloud-object-storage.appdomain.cloud"
}
