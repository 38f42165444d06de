# Variables per stage: infra/stages/<stage>.tfvars (terraform apply -var-file=stages/prod.tfvars).

variable "stage" {
  type        = string
  description = "Stage of serverless.yaml (its environment goes to the apps)."
}

variable "region" {
  type        = string
  description = "IBM Cloud region for Event Streams, the COS buckets, Code Engine and App ID."
  default     = "eu-de"
}

variable "resource_group_id" {
  type        = string
  description = "Resource group that holds every instance."
}

variable "bucket_prefix" {
  type        = string
  description = "Prefix of every bucket name (COS bucket names are global); RETAILFN_BUCKET_PREFIX."
}

variable "event_streams_plan" {
  type        = string
  description = "standard, or enterprise-3nodes-2tb for retention above 30 days and compaction at scale."
  default     = "standard"
}

variable "service_endpoints" {
  type        = string
  description = "Event Streams endpoints: public, private or public-and-private."
  default     = "public"
}

variable "image_registry" {
  type        = string
  description = "Registry namespace of the function images (retailfn package builds one per function), e.g. private.de.icr.io/retailfn."
}

variable "image_tag" {
  type        = string
  description = "Tag of the function images to run."
}

variable "registry_api_key" {
  type        = string
  description = "API key that may pull from image_registry (empty: public images)."
  default     = ""
  sensitive   = true
}

variable "max_instances" {
  type        = number
  description = "Upper bound of instances per app (seasonal peaks scale out to it)."
  default     = 10
}

variable "archive_after_days" {
  type        = number
  description = "Days after which event-archive objects move to the archive (cold) tier."
  default     = 30
}

variable "dead_letter_expiry_days" {
  type        = number
  description = "Days after which dead letters expire from their bucket."
  default     = 90
}

variable "appid_plan" {
  type        = string
  description = "App ID plan."
  default     = "graduated-tier"
}

variable "kafka_partner_producers" {
  type        = list(string)
  description = "Partners that produce their own stock to inventory.stock-reported: each gets a service ID with Writer on that topic only (iam.tf)."
  default     = []
}

variable "database_plan" {
  type        = string
  description = "Databases for PostgreSQL plan (the state database); standard is the one the service offers."
  default     = "standard"
}

variable "database_version" {
  type        = string
  description = "PostgreSQL major version of the state database: IBM Cloud Databases' preferred one (the code needs 14 or later; its tests run on 18)."
  default     = "17"
}

variable "database_service_endpoints" {
  type        = string
  description = "State database endpoints: public, private or public-and-private (the apps' credential uses the private one only for private)."
  default     = "public"
}

variable "database_members" {
  type        = number
  description = "Members of the state database (a primary and a replica at least)."
  default     = 2
}

variable "database_memory_mb" {
  type        = number
  description = "Memory per member of the state database, MB."
  default     = 4096
}

variable "database_disk_mb" {
  type        = number
  description = "Disk per member of the state database, MB."
  default     = 5120
}

variable "database_cpu_count" {
  type        = number
  description = "Dedicated CPUs per member of the state database (0: shared CPU)."
  default     = 0
}

variable "database_max_connections" {
  type        = number
  description = "PostgreSQL max_connections of the state database (the service's own default, 115; 15 are its superuser's). The apps' pools must stay below it: see the README."
  default     = 115
}
