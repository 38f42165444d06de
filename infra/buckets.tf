# COS buckets: one per logical bucket of events/catalog.py; var.bucket_prefix separates stages.

# Partners' stock files ({partner}/*.csv|json); a write triggers ingest_stock_file.
resource "ibm_cos_bucket" "partner_drops" {
  bucket_name          = "${var.bucket_prefix}-partner-drops"
  resource_instance_id = ibm_resource_instance.cos.id
  region_location      = var.region
  storage_class        = "smart"
}

# Every topic archived as {topic}/date=/hour=/{topic}+{partition}+{startOffset}.ndjson.gz: the historical data.
resource "ibm_cos_bucket" "events_archive" {
  bucket_name          = "${var.bucket_prefix}-events-archive"
  resource_instance_id = ibm_resource_instance.cos.id
  region_location      = var.region
  storage_class        = "smart"
}

# The availability view, cross-sell model, coupon ledger and idempotency records, under conditional writes.
resource "ibm_cos_bucket" "state" {
  bucket_name          = "${var.bucket_prefix}-state"
  resource_instance_id = ibm_resource_instance.cos.id
  region_location      = var.region
  storage_class        = "smart"
}

# Redemption feedback and campaign metrics for the ERP.
resource "ibm_cos_bucket" "erp_exports" {
  bucket_name          = "${var.bucket_prefix}-erp-exports"
  resource_instance_id = ibm_resource_instance.cos.id
  region_location      = var.region
  storage_class        = "smart"
}

# Dead-lettered events kept for inspection and replay.
resource "ibm_cos_bucket" "dead_letters" {
  bucket_name          = "${var.bucket_prefix}-dead-letters"
  resource_instance_id = ibm_resource_instance.cos.id
  region_location      = var.region
  storage_class        = "smart"
}
