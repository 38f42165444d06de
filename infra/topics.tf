# Event Streams topics: one per entry of events/catalog.py (retailfn validate checks they match).

resource "ibm_event_streams_topic" "inventory_stock_reported" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "inventory.stock-reported"
  partitions           = 12
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "604800000"
  }
}

resource "ibm_event_streams_topic" "inventory_stock_changed" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "inventory.stock-changed"
  partitions           = 12
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "604800000"
  }
}

resource "ibm_event_streams_topic" "catalog_product_introduced" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "catalog.product-introduced"
  partitions           = 6
  config = {
    "cleanup.policy" = "compact"
    "retention.ms" = "-1"
  }
}

resource "ibm_event_streams_topic" "sales_order_completed" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "sales.order-completed"
  partitions           = 12
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "2592000000"
  }
}

resource "ibm_event_streams_topic" "pos_checkout_completed" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "pos.checkout-completed"
  partitions           = 6
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "604800000"
  }
}

resource "ibm_event_streams_topic" "analytics_slow_mover_detected" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "analytics.slow-mover-detected"
  partitions           = 3
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "2592000000"
  }
}

resource "ibm_event_streams_topic" "loyalty_campaign_created" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "loyalty.campaign-created"
  partitions           = 3
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "31536000000"
  }
}

resource "ibm_event_streams_topic" "loyalty_coupon_issued" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "loyalty.coupon-issued"
  partitions           = 6
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "31536000000"
  }
}

resource "ibm_event_streams_topic" "loyalty_coupon_redeemed" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "loyalty.coupon-redeemed"
  partitions           = 6
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "31536000000"
  }
}

resource "ibm_event_streams_topic" "trends_trend_observed" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "trends.trend-observed"
  partitions           = 3
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "7776000000"
  }
}

resource "ibm_event_streams_topic" "recommendations_events" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "recommendations.events"
  partitions           = 6
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "2592000000"
  }
}

resource "ibm_event_streams_topic" "platform_dead_letter" {
  resource_instance_id = ibm_resource_instance.event_streams.id
  name                 = "platform.dead-letter"
  partitions           = 3
  config = {
    "cleanup.policy" = "delete"
    "retention.ms" = "2592000000"
  }
}
