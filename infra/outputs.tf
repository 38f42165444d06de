output "app_endpoints" {
  description = "Public URL of each function's app; empty for event-only apps (project-internal)."
  value       = module.functions.app_endpoints
}

output "kafka_brokers" {
  description = "SASL bootstrap servers (RETAILFN_KAFKA_BOOTSTRAP_SERVERS)."
  value       = module.functions.kafka_brokers_sasl
}

output "cos_endpoint" {
  description = "RETAILFN_COS_ENDPOINT."
  value       = local.cos_endpoint
}

output "cos_instance_crn" {
  value = ibm_resource_instance.cos.crn
}

output "database_instance_crn" {
  description = "The state database (Databases for PostgreSQL)."
  value       = ibm_database.state.id
}

output "database_version" {
  value = ibm_database.state.version
}

output "database_secret" {
  description = "Code Engine secret with RETAILFN_DATABASE_URL and RETAILFN_DATABASE_CA_PEM (every app gets it)."
  value       = ibm_code_engine_secret.database.name
}

output "database_url" {
  description = "RETAILFN_DATABASE_URL of the apps, for `retailfn db upgrade` from the deploying machine (with RETAILFN_DATABASE_CA_PEM)."
  value       = local.database_url
  sensitive   = true
}

output "database_ca_pem" {
  description = "RETAILFN_DATABASE_CA_PEM: the state database's CA certificate (PEM)."
  value       = base64decode(local.database_connection.certificate.certificate_base64)
}

output "bucket_names" {
  value = module.functions.bucket_names
}

output "jwt_issuer" {
  description = "RETAILFN_JWT_ISSUER (App ID)."
  value       = ibm_appid_application.partners.oauth_server_url
}

output "jwt_audience" {
  description = "RETAILFN_JWT_AUDIENCE (App ID client id)."
  value       = ibm_appid_application.partners.client_id
}
