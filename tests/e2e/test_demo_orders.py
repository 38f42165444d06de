"""``make run`` twice on one data folder: the demo's day of orders is published again, at new
offsets, under the same order ids; the cross-sell model still holds each order once. The runtime
from serverless.yaml, on the embedded default, as the demo runs it."""

from __future__ import annotations

from pathlib import Path

from shared.crosssell import CrossSellStore
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from shared.tools.demo import a_day_of_orders
from tests.e2e.conftest import eventually

REPO = Path(__file__).resolve().parents[2]
ORDERS = 400


def orders_folded() -> int:
    """Records of sales.order-completed the published model has seen (counted or skipped)."""
    models = CrossSellStore().current()
    if models is None:
        return 0
    return sum(
        hi - lo + 1
        for stream, ranges in models.manifest.offsets.items()
        if stream.startswith("sales.order-completed+")
        for lo, hi in ranges
    )


def demo_run(published_before: int) -> float:
    """One demo run's orders through a fresh runtime; the baskets of the model after it."""
    runtime = Runtime(load_service(REPO / "serverless.yaml", stage="local"), port=0)
    runtime.start()
    try:
        assert runtime.wait_ready(60)
        a_day_of_orders(lambda _: None, orders=ORDERS)
        eventually(
            lambda: orders_folded() == published_before + ORDERS, timeout_s=90, interval_s=0.5
        )
    finally:
        runtime.stop()
    models = CrossSellStore().current()
    assert models is not None
    return sum(models.region(r).basket_count for r in models.regions)


def test_running_the_demo_twice_on_one_data_folder_leaves_the_baskets_as_they_were() -> None:
    assert demo_run(published_before=0) == ORDERS
    assert demo_run(published_before=ORDERS) == ORDERS
