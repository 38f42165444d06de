"""Contracts as a whole: each type has a model, a sample, a schema and a topic; nothing drifts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events import EVENT_TYPES, TOPICS, payload_model, topic_for_type, types_on_topic
from events.catalog import BUCKETS, NOT_ON_A_TOPIC
from events.envelope import event_from_sample
from events.registry import short_name
from events.samples import load_sample, sample_names
from events.schema import SCHEMA_DIR, export_schemas, json_schemas

PLATFORM_SAMPLES = {
    "codeengine-kafka-stock-reported",
    "codeengine-cos-write",
    "codeengine-cos-delete",
}


@pytest.mark.parametrize("name", sample_names())
def test_every_committed_sample_parses_into_a_typed_event(name: str) -> None:
    event = event_from_sample(name)

    assert isinstance(event.data, EVENT_TYPES[event.type])


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_every_type_has_a_sample_of_that_type(ce_type: str) -> None:
    sample = load_sample(short_name(ce_type))

    assert sample["type"] == ce_type
    assert sample["datacontenttype"] == "application/json"
    assert {"specversion", "id", "source", "time", "subject", "data"} <= sample.keys()


def test_every_sample_is_a_type_or_a_platform_envelope() -> None:
    expected = {short_name(t) for t in EVENT_TYPES} | PLATFORM_SAMPLES

    assert set(sample_names()) == expected


def test_every_type_follows_the_naming_scheme_and_declares_itself() -> None:
    for ce_type, model in EVENT_TYPES.items():
        assert ce_type.startswith("com.retailfn.") and ce_type.endswith(".v1")
        assert model.ce_type == ce_type
        assert payload_model(ce_type) is model


def test_unknown_type_has_no_payload_model() -> None:
    with pytest.raises(KeyError, match="com.retailfn.nope.v1"):
        payload_model("com.retailfn.nope.v1")


def test_payload_models_forbid_unknown_fields_and_are_frozen() -> None:
    for model in EVENT_TYPES.values():
        assert model.model_config["extra"] == "forbid"
        assert model.model_config["frozen"] is True


def test_committed_schemas_equal_the_generated_ones() -> None:
    committed = {path.name: json.loads(path.read_text()) for path in SCHEMA_DIR.glob("*.json")}
    generated = {f"{t}.json": schema for t, schema in json_schemas().items()}

    # Regenerate with: python -m events.schema
    assert committed == generated


def test_every_schema_carries_its_id_and_title() -> None:
    for ce_type, schema in json_schemas().items():
        assert schema["title"] == ce_type
        assert schema["$id"].endswith(ce_type)
        assert schema["additionalProperties"] is False


def test_export_writes_one_file_per_type(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)

    assert sorted(p.name for p in written) == sorted(f"{t}.json" for t in EVENT_TYPES)


def test_every_type_travels_on_a_topic_unless_it_comes_from_a_bucket() -> None:
    carried = {t for topic in TOPICS.values() for t in topic.event_types}

    assert carried | NOT_ON_A_TOPIC == set(EVENT_TYPES)
    assert not carried & NOT_ON_A_TOPIC


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_topic_key_fields_exist_on_every_type_it_carries(topic: str) -> None:
    for ce_type in types_on_topic(topic):
        fields = EVENT_TYPES[ce_type].model_fields
        for name in TOPICS[topic].key_fields:
            assert name in fields and fields[name].is_required(), (ce_type, name)


def test_order_completed_is_published_on_sales_but_also_carried_by_pos() -> None:
    order = "com.retailfn.sales.order-completed.v1"

    assert topic_for_type(order) == "sales.order-completed"
    assert order in types_on_topic("pos.checkout-completed")


def test_coupon_outcomes_share_one_topic_keyed_by_coupon() -> None:
    topic = TOPICS[topic_for_type("com.retailfn.loyalty.coupon-voided.v1")]

    assert topic.name == "loyalty.coupon-redeemed"
    assert topic.key == "coupon_id"
    assert len(topic.event_types) == 3


def test_compacted_topic_configs_keep_records_forever() -> None:
    assert TOPICS["catalog.product-introduced"].config() == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
    }
    assert TOPICS["inventory.stock-reported"].config() == {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * 24 * 3600 * 1000),
    }


def test_unknown_topic_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        types_on_topic("nope")
    with pytest.raises(KeyError):
        topic_for_type("com.retailfn.platform.object-changed.v1")


def test_logical_buckets_are_all_declared() -> None:
    expected = {"partner-drops", "events-archive", "state", "erp-exports", "dead-letters"}

    assert set(BUCKETS) == expected


def test_events_package_does_not_import_the_common_layer() -> None:
    root = Path(__file__).parents[2] / "events"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "from shared" not in text and "import shared" not in text, path
