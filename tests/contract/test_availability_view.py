"""The availability view and the catalog behave the same on the local folder and on COS (moto):
compare-and-swap under concurrency, and cursors over COS continuation tokens."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.envelope import event_from_sample
from shared.integration.objectstore import ObjectStore
from shared.integration.objectstore.local import LocalFolderStore
from shared.inventory import AvailabilityView, CatalogConflict, ProductCatalog, pages
from shared.inventory.rules import NormalizedReport
from shared.platform.adapters import object_store_from_settings
from shared.platform.settings import Settings
from tests.servers import MotoS3

T0 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "cos"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        adapter: ObjectStore = LocalFolderStore(tmp_path / "objects")
    else:
        moto: MotoS3 = request.getfixturevalue("moto_s3")
        adapter = object_store_from_settings(
            Settings(
                objectstore="cos",
                cos_endpoint=moto.endpoint,
                cos_region="us-east-1",
                cos_hmac_access_key_id="test",
                cos_hmac_secret_access_key="test",
            )
        )
    yield adapter
    adapter.close()


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    name = f"av-{uuid.uuid4().hex[:20]}"
    store.create_bucket(name)
    return name


def report(
    location: str, on_hand: int, *, partner: str = "acme", region: str = "eu", minutes: int = 0
) -> NormalizedReport:
    return NormalizedReport(
        partner_id=partner,
        location_id=location,
        region=region,  # type: ignore[arg-type]
        on_hand=on_hand,
        reserved=0,
        incoming=0,
        unit="each",
        reported_at=T0 + timedelta(minutes=minutes),
    )


def test_concurrent_applies_to_one_sku_all_land(store: ObjectStore, bucket: str) -> None:
    view = AvailabilityView(store, bucket)
    start = threading.Barrier(20)

    def apply(n: int) -> None:
        start.wait()
        view.apply("YOGA-MAT", report(f"STORE-{n:02d}", n + 1))

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(apply, range(20)))

    assert view.get("YOGA-MAT").available == sum(range(1, 21))


def test_listing_filters_and_pages_across_store_pages(
    store: ObjectStore, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "STORE_PAGE", 7)  # several store pages per answer page
    view = AvailabilityView(store, bucket)
    for n in range(30):
        view.apply(f"SKU-{n:03d}", report("BERLIN", 1, region="eu" if n % 3 else "na"))

    seen, cursor = [], None
    while True:
        page = view.list(region="eu", cursor=cursor, limit=4)
        seen += [item.sku for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == [f"SKU-{n:03d}" for n in range(30) if n % 3]


def test_the_catalog_maps_partner_skus_and_lists_by_category(
    store: ObjectStore, bucket: str
) -> None:
    catalog = ProductCatalog(store, bucket)
    product = event_from_sample("product-introduced").data
    slashed = product.model_copy(
        update={"sku": "MAT-2", "partner_sku": "mats/6mm", "category": "sports/yoga"}
    )

    assert catalog.put(product) == "created"
    assert catalog.put(product) == "unchanged"
    assert catalog.put(slashed) == "created"

    assert catalog.sku_for("acme", "mats/6mm") == "MAT-2"
    assert [p.sku for p in catalog.list(category_prefix="sports/yoga").items] == [
        "MAT-2",
        "YOGA-MAT-4MM",
    ]
    assert catalog.list(category_prefix="sports/yoga/mats").items == [product]


def test_another_partner_cannot_claim_a_catalog_sku(store: ObjectStore, bucket: str) -> None:
    catalog = ProductCatalog(store, bucket)
    product = event_from_sample("product-introduced").data
    catalog.put(product)

    with pytest.raises(CatalogConflict, match="belongs to partner acme"):
        catalog.put(product.model_copy(update={"partner_id": "rival", "partner_sku": "X1"}))

    assert catalog.get(product.sku) == product
    assert catalog.sku_for("rival", "X1") is None
