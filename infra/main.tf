# retailfn on IBM Cloud: the service instances the functions use.
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

variable "region" {
  type        = string
  description = "IBM Cloud region for Event Streams, the COS buckets and Code Engine."
  default     = "eu-de"
}

variable "resource_group_id" {
  type        = string
  description = "Resource group that holds every instance."
}

variable "bucket_prefix" {
  type        = string
  description = "Prefix of every bucket name, one per stage (COS bucket names are global)."
}

variable "event_streams_plan" {
  type    = string
  default = "standard"
}

resource "ibm_resource_instance" "event_streams" {
  name              = "${var.bucket_prefix}-event-streams"
  service           = "messagehub"
  plan              = var.event_streams_plan
  location          = var.region
  resource_group_id = var.resource_group_id
}

resource "ibm_resource_instance" "cos" {
  name              = "${var.bucket_prefix}-cos"
  service           = "cloud-object-storage"
  plan              = "standard"
  location          = "global"
  resource_group_id = var.resource_group_id
}
