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
