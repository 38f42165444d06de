# One service ID for the functions; its credentials (secrets.tf) carry only these policies and
# the per-bucket Writer policies generated in infra/generated/buckets.tf.json.

resource "ibm_iam_service_id" "functions" {
  name        = "${local.name}-functions"
  description = "retailfn functions on Code Engine (${var.stage}): produce and consume the retailfn topics, read and write the retailfn buckets."
}

# Event Streams: Reader on the cluster (connect), Writer on the topics of this instance only,
# Reader on the consumer groups that the functions use (retailfn-<stage>-<function>).
resource "ibm_iam_service_policy" "functions_event_streams_cluster" {
  iam_service_id = ibm_iam_service_id.functions.id
  roles          = ["Reader"]
  resources {
    service              = "messagehub"
    resource_instance_id = ibm_resource_instance.event_streams.guid
    resource_type        = "cluster"
  }
}

resource "ibm_iam_service_policy" "functions_event_streams_topics" {
  iam_service_id = ibm_iam_service_id.functions.id
  roles          = ["Writer"]
  resources {
    service              = "messagehub"
    resource_instance_id = ibm_resource_instance.event_streams.guid
    resource_type        = "topic"
  }
}

resource "ibm_iam_service_policy" "functions_event_streams_groups" {
  iam_service_id = ibm_iam_service_id.functions.id
  roles          = ["Reader"]
  resource_attributes {
    name  = "serviceName"
    value = "messagehub"
  }
  resource_attributes {
    name  = "serviceInstance"
    value = ibm_resource_instance.event_streams.guid
  }
  resource_attributes {
    name  = "resourceType"
    value = "group"
  }
  resource_attributes {
    name     = "resource"
    value    = "retailfn-${var.stage}-*"
    operator = "stringMatch"
  }
}

# Partners bound to their channels (docs/ARCHITECTURE.md, "Partners and their channels"): the
# functions' service ID above and these partner producers are the only writers of
# inventory.stock-reported. A partner that produces its stock to Kafka itself gets a service ID
# of its own with Writer on that one topic; bind its source prefix as well
# (`retailfn partners bind <partner> --source <prefix>`), or ingest_stock dead-letters its records.
resource "ibm_iam_service_id" "partner_producer" {
  for_each    = toset(var.kafka_partner_producers)
  name        = "${local.name}-producer-${each.key}"
  description = "Partner ${each.key} (${var.stage}): produce its own stock reports to inventory.stock-reported, nothing else."
}

resource "ibm_iam_service_policy" "partner_producer_cluster" {
  for_each       = ibm_iam_service_id.partner_producer
  iam_service_id = each.value.id
  roles          = ["Reader"]
  resources {
    service              = "messagehub"
    resource_instance_id = ibm_resource_instance.event_streams.guid
    resource_type        = "cluster"
  }
}

resource "ibm_iam_service_policy" "partner_producer_topic" {
  for_each       = ibm_iam_service_id.partner_producer
  iam_service_id = each.value.id
  roles          = ["Writer"]
  resources {
    service              = "messagehub"
    resource_instance_id = ibm_resource_instance.event_streams.guid
    resource_type        = "topic"
    resource             = "inventory.stock-reported"
  }
}

# Code Engine may register bucket notifications for its COS subscriptions on this instance only.
resource "ibm_iam_authorization_policy" "code_engine_cos_notifications" {
  source_service_name         = "codeengine"
  source_resource_instance_id = ibm_code_engine_project.retailfn.project_id
  target_service_name         = "cloud-object-storage"
  target_resource_instance_id = ibm_resource_instance.cos.guid
  roles                       = ["Notifications Manager"]
}
