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

# The apps' database user: a service credential of the state database (IBM Cloud Databases makes
# a PostgreSQL user of the ibm-cloud-base-user group for it, not a superuser). Editor, not
# Administrator: the apps read and write their data and do not manage the instance.
# `retailfn db upgrade` connects as this user too (the database_url output), so that the
# tables it creates are the apps' own.
resource "ibm_resource_key" "database" {
  name                 = "${local.name}-functions-database"
  resource_instance_id = ibm_database.state.id
  role                 = "Editor"
  parameters = {
    service-endpoints = var.database_service_endpoints == "private" ? "private" : "public"
  }
}

locals {
  # The credential's connection.postgres: authentication, hosts, database, the CA certificate.
  database_connection = jsondecode(ibm_resource_key.database.credentials_json).connection.postgres
  database_userinfo   = join(":", [
    urlencode(local.database_connection.authentication.username),
    urlencode(local.database_connection.authentication.password),
  ])
  # The URL as SQLAlchemy takes it: scheme postgresql+psycopg, the userinfo above, host, port,
  # database (ibmclouddb), TLS verifying the host name against the CA.
  database_url = format(
    "postgresql+psycopg://%s@%s:%s/%s?sslmode=verify-full",
    local.database_userinfo,
    local.database_connection.hosts[0].hostname,
    local.database_connection.hosts[0].port,
    local.database_connection.database,
  )
}

# RETAILFN_DATABASE_URL and the instance's CA (PEM) as RETAILFN_DATABASE_CA_PEM: every app gets
# both as environment variables (env from this secret); the app writes the PEM to a private file
# at start and adds sslrootcert=<that file> to the URL (shared/platform/settings.py).
resource "ibm_code_engine_secret" "database" {
  project_id = ibm_code_engine_project.retailfn.project_id
  name       = "retailfn-database"
  format     = "generic"
  data = {
    RETAILFN_DATABASE_URL    = local.database_url
    RETAILFN_DATABASE_CA_PEM = base64decode(local.database_connection.certificate.certificate_base64)
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
