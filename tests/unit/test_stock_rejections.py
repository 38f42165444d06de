from __future__ import annotations

import pytest

from shared.inventory.rejections import channel_of


@pytest.mark.parametrize(
    ("source", "channel"),
    [
        ("/partners/acme/stock", "http"),
        ("/cos/retailfn-prod-partner-drops/acme/2026-11-27/stock.csv", "file"),
        ("/acme/erp", "kafka"),
        ("/apis/v1/namespaces/ns/kafkasources/stock#inventory.stock-reported", "kafka"),
    ],
)
def test_the_channel_of_a_refused_report_is_told_by_its_source(source: str, channel: str) -> None:
    assert channel_of(source) == channel
