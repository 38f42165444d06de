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
