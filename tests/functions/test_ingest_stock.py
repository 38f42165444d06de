from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from events.envelope import Event, event_from_sample, from_kafka, new_event, parse_event
from events.inventory import BackInStock, OutOfStock, StockChanged, StockReported
from events.samples import load_sample
from functions.ingest_stock.main import ingest_stock
from shared.inventory import AvailabilityView, PartnerRegistry, ProductCatalog
from shared.platform.adapters import get_bus, get_store
from shared.platform.errors import PermanentError
from shared.runtime.app import provision

T0 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
SKU = "YOGA-MAT-4MM"


@pytest.fixture(autouse=True)
def catalog() -> ProductCatalog:
    provision(get_bus(), get_store())
    catalog = ProductCatalog()
    catalog.put(event_from_sample("product-introduced").data)
    return catalog


def stock_event(
    on_hand: int = 48,
    *,
    reserved: int = 3,
    seq: int | None = 1017,
    at: datetime = T0,
    location: str = "DC-BERLIN-1",
    partner_sku: str = "YM-4MM-PURPLE",
    event_id: str | None = None,
    partner: str = "acme",
    source: str = "/partners/acme/stock",
) -> CloudEvent:
    report = StockReported(
        partner_id=partner,
        partner_sku=partner_sku,
        location_id=location,
        region="eu",
        on_hand=Decimal(on_hand),
        reserved=Decimal(reserved),
        reported_at=at,
        sequence=seq,
    )
    return new_event(report, source=source, id=event_id).to_cloudevent()


def published() -> list[Event[Any]]:
    records = get_bus().read_all("inventory.stock-changed")
    return [from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers) for r in records]


def test_a_stock_report_updates_the_view_and_publishes_stock_changed() -> None:
    ingest_stock(stock_event(48, reserved=3))

    [event] = published()
    assert isinstance(event.data, StockChanged)
    assert (event.data.sku, event.data.available, event.data.previous_available) == (SKU, 45, None)
    assert event.source == "/functions/ingest_stock"
    assert event.partitionkey == f"{SKU}:DC-BERLIN-1"
    assert AvailabilityView().get(SKU).available == 45


def test_code_engines_kafka_event_is_ingested_too() -> None:
    sample = load_sample("codeengine-kafka-stock-reported")
    ce = CloudEvent({k: v for k, v in sample.items() if k != "data"}, sample["data"])
    # A raw record's source is the platform's, named after the topic: acme's producer owns it.
    PartnerRegistry().bind("acme", parse_event(ce).source)

    ingest_stock(ce)

    assert AvailabilityView().get(SKU).available == 45


def test_an_older_report_after_a_newer_one_does_not_change_availability() -> None:
    ingest_stock(stock_event(48, seq=1017))

    ingest_stock(stock_event(5, seq=1016))

    assert AvailabilityView().get(SKU).available == 45
    assert len(published()) == 1


def test_the_same_report_in_another_event_changes_nothing_and_publishes_nothing() -> None:
    ingest_stock(stock_event(48))

    ingest_stock(stock_event(48))  # a partner's retry: new event id, same report

    assert len(published()) == 1


def test_a_corrected_report_with_the_same_sequence_replaces_the_first() -> None:
    ingest_stock(stock_event(1, reserved=0, seq=7))  # the first version of an overwritten drop
    ingest_stock(stock_event(12, reserved=0, seq=7))  # the corrected version, a new drop

    assert AvailabilityView().get(SKU).available == 12
    assert [e.data.available for e in published()] == [1, 12]


def test_the_same_event_twice_has_one_effect() -> None:
    event = stock_event(48, event_id="report-1")

    ingest_stock(event)
    ingest_stock(event)

    # The redelivery re-announces under the same ids (its first run may have died before
    # publishing); consumers deduplicate on (source, id), so the effect is one change.
    assert AvailabilityView().get(SKU).available == 45
    assert len({(e.source, e.id) for e in published()}) == 1


def test_out_of_stock_and_back_in_stock_are_published_in_order() -> None:
    ingest_stock(stock_event(10, reserved=0, seq=1))
    ingest_stock(stock_event(0, reserved=0, seq=2))
    ingest_stock(stock_event(7, reserved=0, seq=3))

    kinds = [type(e.data) for e in sorted(published(), key=lambda e: e.origin.offset)]
    assert kinds == [StockChanged, StockChanged, OutOfStock, StockChanged, BackInStock]


def test_an_unknown_partner_sku_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="not in the catalog"):
        ingest_stock(stock_event(partner_sku="NEVER-INTRODUCED"))

    assert published() == []


def test_a_report_dated_beyond_the_clock_skew_is_a_permanent_error_and_pins_nothing() -> None:
    ahead = datetime.now(UTC) + timedelta(days=365)

    with pytest.raises(PermanentError, match="reported_at: more than 300 s ahead"):
        ingest_stock(stock_event(99, at=ahead))

    ingest_stock(stock_event(48, seq=None, at=datetime.now(UTC)))  # the real report after it
    assert AvailabilityView().get(SKU).available == 45


def test_twenty_concurrent_reports_for_one_sku_at_different_locations_all_land() -> None:
    start = threading.Barrier(20)

    def report(n: int) -> None:
        start.wait()
        ingest_stock(stock_event(n + 1, reserved=0, location=f"STORE-{n:02d}"))

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(report, range(20)))

    availability = AvailabilityView().get(SKU)
    assert len(availability.levels) == 20
    assert availability.available == sum(range(1, 21))
    assert len(published()) == 20


def test_a_partner_sku_with_a_slash_is_mapped(catalog: ProductCatalog) -> None:
    product = event_from_sample("product-introduced").data
    catalog.put(product.model_copy(update={"sku": "MAT-SLASH", "partner_sku": "mats/4mm"}))

    ingest_stock(stock_event(3, reserved=0, partner_sku="mats/4mm", at=T0 + timedelta(1)))

    assert AvailabilityView().get("MAT-SLASH").available == 3


def test_a_fraction_of_an_each_is_a_permanent_error() -> None:
    report = StockReported(
        partner_id="acme",
        partner_sku="YM-4MM-PURPLE",
        location_id="DC-1",
        region="eu",
        on_hand=Decimal("1.5"),
        reported_at=T0,
    )

    with pytest.raises(PermanentError, match="whole number"):
        ingest_stock(new_event(report, source="/partners/acme").to_cloudevent())


# --- a partner writes only its own stock, whichever channel it uses


def test_a_report_for_another_partner_from_the_http_channel_is_refused_naming_both() -> None:
    with pytest.raises(PermanentError) as refused:
        ingest_stock(stock_event(source="/partners/globex/stock"))

    assert str(refused.value) == (
        "partner_id: the report is for partner 'acme', but its source '/partners/globex/stock' "
        "is bound to partner 'globex'"
    )
    assert AvailabilityView().get(SKU) is None and published() == []


def test_a_report_for_another_partner_from_a_file_in_a_partners_folder_is_refused() -> None:
    with pytest.raises(PermanentError, match="bound to partner 'globex'"):
        ingest_stock(stock_event(source="/cos/partner-drops/globex/2026-11-27/stock.csv"))

    assert AvailabilityView().get(SKU) is None


def test_a_file_source_outside_the_partner_drops_bucket_is_bound_to_no_partner() -> None:
    with pytest.raises(PermanentError, match="bound to no partner"):
        ingest_stock(stock_event(source="/cos/events-archive/acme/stock.csv"))

    assert AvailabilityView().get(SKU) is None


def test_a_kafka_record_from_an_unregistered_producer_is_refused() -> None:
    with pytest.raises(PermanentError, match="'/producers/acme/pos' is bound to no partner"):
        ingest_stock(stock_event(source="/producers/acme/pos"))

    assert AvailabilityView().get(SKU) is None


def test_a_registered_producer_reports_its_own_partners_stock() -> None:
    PartnerRegistry().bind("acme", "/producers/acme")

    ingest_stock(stock_event(48, reserved=3, source="/producers/acme/pos-7"))

    assert AvailabilityView().get(SKU).available == 45


def test_a_registered_producer_may_not_report_another_partners_stock() -> None:
    PartnerRegistry().bind("globex", "/producers/globex")

    with pytest.raises(
        PermanentError,
        match="for partner 'acme', but its source '/producers/"
        "globex/pos' is bound to partner 'globex'",
    ):
        ingest_stock(stock_event(source="/producers/globex/pos"))

    assert AvailabilityView().get(SKU) is None


def test_a_binding_made_by_another_process_is_seen_within_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.inventory import partners

    now = [1000.0]
    monkeypatch.setattr(partners, "_monotonic", lambda: now[0])
    with pytest.raises(PermanentError):
        ingest_stock(stock_event(source="/producers/acme/pos"))  # caches "no bindings"
    # Another process binds acme's producer: only the stored registry changes, not our cache.
    get_store().put(
        "state",
        partners.REGISTRY_KEY,
        b'{"sources": {"/producers/acme": "acme"}}',
        content_type="application/json",
    )
    now[0] += partners.RELOAD_UNBOUND_AFTER_S

    ingest_stock(stock_event(48, reserved=3, source="/producers/acme/pos"))

    assert AvailabilityView().get(SKU).available == 45


def test_an_unreadable_partner_registry_refuses_producers_but_not_retailfns_own_channels() -> None:
    get_store().put("state", "partners/sources.json", b"{not json", content_type="application/json")

    with pytest.raises(PermanentError, match="bound to no partner"):
        ingest_stock(stock_event(source="/producers/acme/pos"))
    ingest_stock(stock_event(48, reserved=3))  # over HTTP

    assert AvailabilityView().get(SKU).available == 45


def test_code_engine_events_of_two_subscriptions_at_one_offset_announce_distinct_ids() -> None:
    sample = load_sample("codeengine-kafka-stock-reported")
    attrs = {k: v for k, v in sample.items() if k != "data"}
    other = {**attrs, "source": "/apis/v1/namespaces/b/kafkasources/s#inventory.stock-reported"}
    for subscription in (attrs, other):  # each subscription's source is bound to the partner
        PartnerRegistry().bind("acme", subscription["source"])

    ingest_stock(CloudEvent(attrs, sample["data"]))
    ingest_stock(CloudEvent(other, {**sample["data"], "location_id": "DC-PARIS-1"}))

    assert len({e.id for e in published()}) == 2


def test_distinct_events_whose_source_and_id_would_join_alike_announce_distinct_ids() -> None:
    def event(source: str, event_id: str, location: str) -> CloudEvent:
        report = StockReported(
            partner_id="acme",
            partner_sku="YM-4MM-PURPLE",
            location_id=location,
            region="eu",
            on_hand=Decimal(5),
            reported_at=T0,
        )
        return new_event(report, source=source, id=event_id).to_cloudevent()

    PartnerRegistry().bind("acme", "/producers/acme")
    ingest_stock(event("/producers/acme/a", "x\ny z", "DC-BERLIN-1"))
    ingest_stock(event("/producers/acme/a\nx", "y z", "DC-PARIS-1"))
    ingest_stock(event("/producers/acme/a\nx y", "z", "DC-MUNICH-1"))

    assert len({e.id for e in published()}) == 3
    assert AvailabilityView().get(SKU).available == 15
