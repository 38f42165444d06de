"""Envelopes: every way an event arrives gives the same typed Event, or one InvalidEvent."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.conversion import to_binary as sdk_to_binary
from cloudevents.http import CloudEvent
from cloudevents.http import from_http as sdk_from_http

from events import (
    InvalidEvent,
    from_cloudevent,
    from_http,
    from_kafka,
    new_event,
    parse_event,
    to_http,
    to_kafka,
)
from events.envelope import Event, event_from_sample, identity
from events.inventory import StockReported
from events.platform import ObjectChanged
from events.sales import OrderCompleted
from events.samples import load_sample

STOCK_REPORTED = "com.retailfn.inventory.stock-reported.v1"


def stock_reported() -> StockReported:
    return StockReported.model_validate(load_sample("stock-reported")["data"])


def structured(name: str, **changes: Any) -> dict[str, Any]:
    sample = load_sample(name)
    sample.update(changes)
    return sample


# --- building -------------------------------------------------------------------------------


def test_new_event_takes_its_type_from_the_payload_and_its_key_from_the_topic() -> None:
    event = new_event(stock_reported(), source="/partners/acme")

    assert event.type == STOCK_REPORTED
    assert event.partitionkey == "acme:DC-BERLIN-1"
    assert event.time.tzinfo is not None
    assert len(event.id) == 36


def test_new_event_rejects_a_naive_time() -> None:
    with pytest.raises(InvalidEvent, match="time"):
        new_event(stock_reported(), source="/partners/acme", time=datetime(2026, 11, 27, 8))


def test_an_event_whose_type_does_not_match_its_payload_is_rejected() -> None:
    sample = structured("stock-reported", type="com.retailfn.inventory.stock-changed.v1")

    with pytest.raises(InvalidEvent) as caught:
        parse_event(sample)

    assert caught.value.reason.startswith("data.")
    assert caught.value.event_type == "com.retailfn.inventory.stock-changed.v1"


# --- malformed samples ------------------------------------------------------------------------


def test_unknown_type_is_invalid() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(structured("order-completed", type="com.retailfn.sales.order-refunded.v1"))

    assert caught.value.reason == "type: unknown event type 'com.retailfn.sales.order-refunded.v1'"
    assert caught.value.event_id == "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"


def test_negative_line_quantity_is_invalid_naming_the_line() -> None:
    sample = structured("order-completed")
    sample["data"]["lines"][0]["quantity"] = -2

    with pytest.raises(InvalidEvent) as caught:
        parse_event(sample)

    assert caught.value.reason == "data.lines[0].quantity: Input should be greater than 0"
    assert caught.value.event_type == "com.retailfn.sales.order-completed.v1"


def test_missing_payload_field_is_invalid_naming_it() -> None:
    sample = structured("coupon-redeemed")
    del sample["data"]["order_id"]

    with pytest.raises(InvalidEvent) as caught:
        parse_event(sample)

    assert caught.value.reason == "data.order_id: Field required"


def test_missing_event_id_is_invalid() -> None:
    sample = structured("order-completed")
    del sample["id"]

    with pytest.raises(InvalidEvent, match="^id: Field required"):
        parse_event(sample)


def test_naive_event_time_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="^time: "):
        parse_event(structured("order-completed", time="2026-11-27T08:00:05"))


def test_bad_currency_in_an_event_is_invalid_naming_it() -> None:
    sample = structured("coupon-issued")
    sample["data"]["currency"] = "ABC"

    with pytest.raises(InvalidEvent, match="^data.currency: .*'ABC' is not an active ISO 4217"):
        parse_event(sample)


def test_several_problems_are_all_reported() -> None:
    sample = structured("stock-reported")
    sample["data"]["on_hand"] = -1
    sample["data"]["region"] = "mars"

    with pytest.raises(InvalidEvent) as caught:
        parse_event(sample)

    assert "data.on_hand" in caught.value.reason and "data.region" in caught.value.reason


def test_something_that_is_no_event_at_all_is_invalid() -> None:
    with pytest.raises(InvalidEvent):
        parse_event(42)  # type: ignore[arg-type]


# --- Kafka ------------------------------------------------------------------------------------


def test_kafka_binary_mode_puts_attributes_in_ce_headers_and_partitionkey_in_the_key() -> None:
    event = new_event(stock_reported(), source="/partners/acme", subject="YM-4MM-PURPLE")

    key, value, headers = to_kafka(event)

    names = dict(headers)
    assert key == b"acme:DC-BERLIN-1"
    assert names["ce_type"] == STOCK_REPORTED.encode()
    assert names["ce_id"] == event.id.encode()
    assert names["ce_specversion"] == b"1.0"
    assert names["content-type"] == b"application/json"
    assert "ce_partitionkey" not in names
    assert json.loads(value)["partner_id"] == "acme"


def test_kafka_round_trip_through_the_sdk_gives_the_same_event() -> None:
    trace = {"traceparent": "00-abc-def-01"}
    sent = new_event(stock_reported(), source="/partners/acme", extensions=trace)
    key, value, headers = to_kafka(sent)

    received = from_kafka("inventory.stock-reported", 3, 1842, key, value, headers)

    assert received.model_dump(exclude={"origin"}) == sent.model_dump(exclude={"origin"})
    assert received.partitionkey == "acme:DC-BERLIN-1"
    assert received.origin.model_dump(exclude_none=True) == {
        "kind": "kafka",
        "topic": "inventory.stock-reported",
        "partition": 3,
        "offset": 1842,
        "key": "acme:DC-BERLIN-1",
    }


def test_raw_json_from_a_partner_takes_its_type_from_a_single_type_topic() -> None:
    value = json.dumps(load_sample("stock-reported")["data"]).encode()

    event = from_kafka(
        "inventory.stock-reported",
        2,
        77,
        b"acme:DC-BERLIN-1",
        value,
        [],
        timestamp_ms=1_796_025_600_000,
    )

    assert event.type == STOCK_REPORTED
    assert event.id == "inventory.stock-reported:2:77"
    assert event.source == "kafka://inventory.stock-reported"
    assert event.time == datetime.fromtimestamp(1_796_025_600, UTC)
    assert event.data == stock_reported()


def test_raw_json_on_a_topic_with_several_types_is_invalid() -> None:
    value = json.dumps(load_sample("stock-changed")["data"]).encode()

    with pytest.raises(InvalidEvent, match="carries 3 types"):
        from_kafka("inventory.stock-changed", 0, 1, None, value, None)


def test_raw_json_on_an_unknown_topic_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="unknown topic"):
        from_kafka("somewhere.else", 0, 1, None, b"{}", None)


def test_kafka_record_that_is_not_json_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="^data: not valid JSON") as caught:
        from_kafka("inventory.stock-reported", 0, 5, None, b"on_hand=5", None)

    assert caught.value.event_id == "inventory.stock-reported:0:5"


def test_kafka_record_with_an_invalid_payload_names_the_field() -> None:
    _, value, headers = to_kafka(new_event(stock_reported(), source="/partners/acme"))
    broken = json.loads(value) | {"on_hand": -3}

    with pytest.raises(InvalidEvent) as caught:
        from_kafka("inventory.stock-reported", 0, 9, None, json.dumps(broken).encode(), headers)

    assert caught.value.reason == "data.on_hand: Input should be greater than or equal to 0"


def test_kafka_record_with_ce_headers_but_no_id_is_invalid() -> None:
    key, value, headers = to_kafka(new_event(stock_reported(), source="/partners/acme"))
    headers = [(name, header) for name, header in headers if name != "ce_id"]

    with pytest.raises(InvalidEvent, match="^id: Field required"):
        from_kafka("inventory.stock-reported", 0, 10, key, value, headers)


def test_kafka_value_of_deeply_nested_brackets_is_invalid_not_a_recursion_error() -> None:
    with pytest.raises(InvalidEvent, match="^data: not valid JSON \\(nested too deeply\\)"):
        from_kafka("inventory.stock-reported", 0, 11, None, b"[" * 200_000, None)


def test_kafka_structured_mode_record_is_read_through_the_sdk() -> None:
    sent = new_event(stock_reported(), source="/partners/acme")
    value = json.dumps(sent.to_dict()).encode()
    headers = {"content-type": b"application/cloudevents+json; charset=utf-8"}

    received = from_kafka("inventory.stock-reported", 1, 5, sent.partitionkey, value, headers)

    assert received.model_dump(exclude={"origin"}) == sent.model_dump(exclude={"origin"})


def test_kafka_structured_mode_record_without_an_id_is_invalid() -> None:
    sent = new_event(stock_reported(), source="/p").to_dict()
    body = {name: value for name, value in sent.items() if name != "id"}
    headers = {"content-type": b"application/cloudevents+json; charset=utf-8"}

    with pytest.raises(InvalidEvent, match="^id: Field required"):
        from_kafka("inventory.stock-reported", 1, 6, None, json.dumps(body).encode(), headers)


def test_identity_keeps_apart_parts_that_hold_the_separator() -> None:
    joined = {
        identity("/a", "b\nc"),
        identity("/a\nb", "c"),
        identity("/a", "b", "c"),
        identity("/a\nb\nc"),
    }

    assert len(joined) == 4
    assert identity("/partners/acme", "report-1") == "/partners/acme\nreport-1"


# --- HTTP -------------------------------------------------------------------------------------


def test_structured_http_round_trip_gives_the_same_event() -> None:
    sent = event_from_sample("order-completed")
    headers, body = to_http(sent)

    received = from_http(headers, body)

    assert headers["content-type"] == "application/cloudevents+json"
    assert received.model_dump(exclude={"origin"}) == sent.model_dump(exclude={"origin"})
    assert received.origin.kind == "http"


def test_binary_http_request_is_read_too() -> None:
    sent = event_from_sample("order-completed")
    headers, body = sdk_to_binary(sent.to_cloudevent())

    received = from_http(headers, body)

    assert received.model_dump(exclude={"origin"}) == sent.model_dump(exclude={"origin"})


def test_http_body_that_is_not_json_is_invalid() -> None:
    with pytest.raises(InvalidEvent):
        from_http({"content-type": "application/cloudevents+json"}, b"not json")


def test_binary_http_without_an_id_is_invalid() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": STOCK_REPORTED,
        "ce-source": "/x",
        "content-type": "application/json",
    }

    with pytest.raises(InvalidEvent, match="^id"):
        from_http(headers, json.dumps(load_sample("stock-reported")["data"]).encode())


def test_a_functions_framework_cloudevent_is_read_like_a_dict() -> None:
    sample = load_sample("order-completed")
    ce = sdk_from_http({"content-type": "application/cloudevents+json"}, json.dumps(sample))

    assert from_cloudevent(ce).data == parse_event(sample).data


# --- Code Engine Kafka subscription events ----------------------------------------------------


def codeengine_kafka(**changes: Any) -> dict[str, Any]:
    return structured("codeengine-kafka-stock-reported", **changes)


def test_codeengine_kafka_event_as_cloudevent_parses_into_our_typed_event() -> None:
    sample = codeengine_kafka()
    data = sample.pop("data")
    ce = CloudEvent(sample, data)

    event = from_cloudevent(ce)

    assert event.type == STOCK_REPORTED
    assert event.data == event_from_sample("stock-reported").data
    assert (event.source, event.id) == (sample["source"], "partition:0/offset:42")
    assert event.partitionkey == "acme:DC-BERLIN-1"
    assert (event.origin.kind, event.origin.topic, event.origin.partition, event.origin.offset) == (
        "kafka",
        "inventory.stock-reported",
        0,
        42,
    )


def test_codeengine_kafka_events_of_two_subscriptions_keep_distinct_identities() -> None:
    # Two clusters (or subscriptions) deliver partition 0, offset 42 of a same-named topic.
    here = parse_event(codeengine_kafka())
    there = parse_event(
        codeengine_kafka(source="/apis/v1/namespaces/b/kafkasources/s#inventory.stock-reported")
    )

    assert here.id == there.id == "partition:0/offset:42"
    assert (here.source, here.id) != (there.source, there.id)


def test_codeengine_kafka_event_as_a_dict_gives_the_same_event() -> None:
    sample = codeengine_kafka()
    data = sample.pop("data")

    assert parse_event(codeengine_kafka()) == from_cloudevent(CloudEvent(sample, data))


def test_codeengine_kafka_value_may_arrive_base64_encoded() -> None:
    raw = json.dumps(load_sample("stock-reported")["data"]).encode()
    sample = codeengine_kafka(data=base64.b64encode(raw).decode())

    assert parse_event(sample).data == event_from_sample("stock-reported").data


def test_codeengine_kafka_event_may_carry_the_value_as_bytes() -> None:
    sample = codeengine_kafka()
    data = json.dumps(sample.pop("data")).encode()

    event = from_cloudevent(CloudEvent(sample, data))

    assert event.data == event_from_sample("stock-reported").data


def test_codeengine_kafka_event_keeps_our_cloudevent_identity_from_carried_headers() -> None:
    ours = event_from_sample("order-completed")
    _, value, headers = to_kafka(ours)
    attrs = codeengine_kafka(
        source="/resource/crn:v1:bluemix:public:messagehub:::/kafka/topics/sales.order-completed",
        key=ours.partitionkey,
    )
    del attrs["data"]
    for name, header in headers:
        # Code Engine turns Kafka headers into extensions; '_' is not allowed there.
        attrs["kafkaheader" + name.replace("_", "").replace("-", "")] = header.decode()

    event = from_cloudevent(CloudEvent(attrs, value))

    assert event.model_dump(exclude={"origin"}) == ours.model_dump(exclude={"origin"})
    assert event.origin.topic == "sales.order-completed"


def test_codeengine_kafka_event_accepts_underscored_header_extensions() -> None:
    attrs = codeengine_kafka(
        kafkaheaderce_type=STOCK_REPORTED,
        kafkaheaderce_id="abc-1",
        kafkaheaderce_source="/partners/acme",
    )
    data = attrs.pop("data")

    event = from_cloudevent(CloudEvent(attrs, data))

    assert (event.id, event.source) == ("abc-1", "/partners/acme")


def test_codeengine_kafka_topic_may_come_from_an_extension() -> None:
    sample = codeengine_kafka(source="/some/where", topic="inventory.stock-reported")

    assert parse_event(sample).type == STOCK_REPORTED


def test_codeengine_kafka_event_from_a_multi_type_topic_without_headers_is_invalid() -> None:
    sample = codeengine_kafka(topic="loyalty.coupon-redeemed")

    with pytest.raises(InvalidEvent, match="carries 3 types"):
        parse_event(sample)


def test_codeengine_kafka_event_with_a_bad_payload_names_the_field() -> None:
    sample = codeengine_kafka()
    sample["data"]["location_id"] = ""

    with pytest.raises(InvalidEvent, match="^data.location_id: "):
        parse_event(sample)


# --- Code Engine object-storage events --------------------------------------------------------


def test_codeengine_cos_write_parses_into_object_changed() -> None:
    sample = load_sample("codeengine-cos-write")
    data = sample.pop("data")

    event = from_cloudevent(CloudEvent(sample, data))

    assert isinstance(event.data, ObjectChanged)
    assert event.data == event_from_sample("object-changed").data
    assert event.type == ObjectChanged.ce_type
    assert event.subject == "acme/2026-11-27.csv"
    assert (event.origin.kind, event.origin.bucket, event.origin.key, event.origin.etag) == (
        "cos",
        "partner-drops",
        "acme/2026-11-27.csv",
        "9b2cf535f27731c974343645a3985328",
    )


def test_codeengine_cos_delete_parses_into_a_delete_without_etag() -> None:
    event = event_from_sample("codeengine-cos-delete")

    assert event.data.operation == "delete"
    assert event.data.etag is None and event.data.size is None


def test_codeengine_cos_event_falls_back_to_the_subject_for_the_key() -> None:
    sample = load_sample("codeengine-cos-write")
    del sample["data"]["key"], sample["data"]["notification"]["object_name"]

    assert parse_event(sample).data.key == "acme/2026-11-27.csv"


def test_codeengine_cos_event_without_a_bucket_is_invalid() -> None:
    sample = load_sample("codeengine-cos-write")
    del sample["data"]["bucket"], sample["data"]["notification"]["bucket_name"]

    with pytest.raises(InvalidEvent, match="^data.bucket: Field required"):
        parse_event(sample)


# --- typing -----------------------------------------------------------------------------------


def test_events_are_typed_by_their_payload() -> None:
    event = event_from_sample("order-completed")

    assert isinstance(event, Event)
    assert isinstance(event.data, OrderCompleted)
    assert type(event) is Event[OrderCompleted]
