"""Use case A end to end, from the project's serverless.yaml: three partners report stock three
ways (HTTP, a CSV file dropped through the S3 API, a Kafka stream); the inventory API shows the
aggregated, localized availability; the event archive holds every event exactly once."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.inventory import PartnerRegistry
from shared.platform.adapters import bucket, get_bus, get_store
from shared.platform.auth import dev_api_key
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from shared.runtime.deadletter import DeadLetterStore
from shared.tools.demo import raw_record_source
from tests.e2e.conftest import Stack, deployed, eventually

REPO = Path(__file__).resolve().parents[2]


def product(
    sku: str,
    partner_sku: str,
    names: dict[str, str],
    regions: list[str],
    prices: dict[str, str],
    category: str,
) -> dict[str, Any]:
    return {
        "sku": sku,
        "partner_sku": partner_sku,
        "category": category,
        "regions": regions,
        "default_locale": "en-US",
        "names": names,
        "prices": prices,
    }


PRODUCTS = {
    "acme": product(
        "YOGA-MAT-4MM",
        "YM-4MM",
        {"en-US": "Yoga mat 4 mm", "de-DE": "Yogamatte 4 mm", "ja-JP": "ヨガマット 4mm"},
        ["eu", "asia"],
        {"EUR": "36.95", "JPY": "5900"},
        "sports/yoga/mats",
    ),
    "globex": product(
        "YOGA-PANTS-M",
        "GX-PANTS-M",
        {"en-US": "Yoga pants M", "de-DE": "Yogahose M", "ja-JP": "ヨガパンツ M"},
        ["eu", "asia"],
        {"EUR": "49.00", "JPY": "7800"},
        "sports/yoga/apparel",
    ),
    "initech": product(
        "YOGA-BLOCK",
        "IN-BLOCK",
        {"en-US": "Yoga block", "de-DE": "Yogablock", "ja-JP": "ヨガブロック"},
        ["eu", "asia"],
        {"EUR": "12.50", "JPY": "1900"},
        "sports/yoga/props",
    ),
}


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.loads(err.read() or b"null")


@pytest.fixture
def runtime(stack: Stack) -> Iterator[Runtime]:
    rt = Runtime(
        deployed(load_service(REPO / "serverless.yaml", stage="local")), port=0, provision=False
    )
    rt.start()
    assert rt.wait_ready(60)
    yield rt
    rt.stop()


def _archived() -> list[dict[str, Any]]:
    store, archive = get_store(), bucket("events-archive")
    lines = []
    for info in store.list(archive, "events/"):
        lines.extend(
            json.loads(line)
            for line in gzip.decompress(store.get(archive, info.key).body).splitlines()
        )
    return lines


def test_three_partners_three_ways_then_localized_availability_and_a_complete_archive(
    stack: Stack, runtime: Runtime
) -> None:
    api = Client(runtime.port)
    for partner, body in PRODUCTS.items():
        status, _, answer = api.call(
            "POST", f"/v1/partners/{partner}/products", body, {"X-API-Key": dev_api_key(partner)}
        )
        assert status in (200, 201), answer

    # acme posts over HTTP
    status, _, answer = api.call(
        "POST",
        "/v1/partners/acme/stock",
        {
            "lines": [
                {
                    "partner_sku": "YM-4MM",
                    "location_id": "BERLIN-1",
                    "region": "eu",
                    "on_hand": 12,
                    "reserved": 2,
                    "sequence": 1,
                },
                {
                    "partner_sku": "YM-4MM",
                    "location_id": "MUNICH-1",
                    "region": "eu",
                    "on_hand": 5,
                    "sequence": 1,
                },
                {
                    "partner_sku": "YM-4MM",
                    "location_id": "TOKYO-1",
                    "region": "asia",
                    "on_hand": 7,
                    "sequence": 1,
                },
            ]
        },
        {"X-API-Key": dev_api_key("acme"), "Idempotency-Key": "acme-morning-1"},
    )
    assert status == 202, answer

    # globex drops a CSV through the S3 API (or, on the folder store, straight into the folder)
    csv = (
        b"partner_sku,location_id,region,on_hand,reserved,unit,units_per_pack,reported_at\n"
        b"GX-PANTS-M,PARIS-1,eu,3,0,pack,4,2026-11-27T07:00:00Z\n"
        b"GX-PANTS-M,OSAKA-1,asia,9,1,each,,2026-11-27T07:00:00Z\n"
        b"GX-PANTS-M,OSAKA-2,asia,-1,0,each,,2026-11-27T07:00:00Z\n"
    )
    drops = bucket("partner-drops")
    if stack.kind == "real":
        import ibm_boto3
        from ibm_botocore.client import Config

        s3 = ibm_boto3.client(
            "s3",
            endpoint_url=stack.s3.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            config=Config(signature_version="s3v4"),
        )
        s3.put_object(
            Bucket=drops, Key="globex/2026-11-27/stock.csv", Body=csv, ContentType="text/csv"
        )
    else:
        folder = Path(stack.env["RETAILFN_DATA_DIR"]) / "objects" / drops / "globex" / "2026-11-27"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stock.csv").write_bytes(csv)

    # initech streams plain JSON to Kafka, keyed by partner and location; its producer is bound
    # to it by the source the platform gives plain records of the topic
    def plain(partner: str, partner_sku: str, location: str, region: str, on_hand: int) -> bytes:
        return json.dumps(
            {
                "partner_id": partner,
                "partner_sku": partner_sku,
                "location_id": location,
                "region": region,
                "on_hand": on_hand,
                "reported_at": "2026-11-27T07:30:00Z",
            }
        ).encode()

    first = plain("initech", "IN-BLOCK", "LYON-1", "eu", 4)
    PartnerRegistry().bind("initech", raw_record_source("inventory.stock-reported", first))
    for value in (
        first,
        plain("initech", "IN-BLOCK", "LYON-2", "eu", 6),
        plain("initech", "IN-BLOCK", "KYOTO-1", "asia", 2),
    ):
        get_bus().publish(
            "inventory.stock-reported", value, key=f"initech:{json.loads(value)['location_id']}"
        )
    # ... and one record that claims to be acme's stock: dead-lettered, never applied
    get_bus().publish(
        "inventory.stock-reported",
        plain("acme", "YM-4MM", "BERLIN-1", "eu", 999),
        key="acme:BERLIN-1",
    )

    def item(sku: str, region: str, lang: str) -> dict[str, Any] | None:
        status, _headers, body = api.call(
            "GET", f"/v1/inventory/{sku}?region={region}", headers={"Accept-Language": lang}
        )
        return body if status == 200 and body["unit"] is not None else None

    mat_de = eventually(
        lambda: (i := item("YOGA-MAT-4MM", "eu", "de-DE")) and i["available"] == 15 and i
    )
    assert (mat_de["name"], mat_de["price"]["currency"], mat_de["price"]["amount"]) == (
        "Yogamatte 4 mm",
        "EUR",
        "36.95",
    )
    assert mat_de["on_hand"] == 17 and mat_de["reserved"] == 2

    mat_ja = eventually(lambda: item("YOGA-MAT-4MM", "asia", "ja-JP"))
    assert (mat_ja["name"], mat_ja["price"]["currency"], mat_ja["available"]) == (
        "ヨガマット 4mm",
        "JPY",
        7,
    )

    pants_de = eventually(lambda: item("YOGA-PANTS-M", "eu", "de-DE"))
    assert (pants_de["name"], pants_de["available"]) == ("Yogahose M", 12)  # 3 packs of 4
    pants_ja = eventually(lambda: item("YOGA-PANTS-M", "asia", "ja-JP"))
    assert (pants_ja["price"]["amount"], pants_ja["available"]) == ("7800", 8)
    report = json.loads(get_store().get(drops, "globex/2026-11-27/stock.csv.report.json").body)
    assert report["lines_rejected"] == 1 and report["rejected"][0]["line"] == 4

    block_de = eventually(
        lambda: (i := item("YOGA-BLOCK", "eu", "de-DE")) and i["available"] == 10 and i
    )
    assert block_de["name"] == "Yogablock"
    assert eventually(lambda: item("YOGA-BLOCK", "asia", "ja-JP"))["available"] == 2

    forged = eventually(
        lambda: [d.dead_letter for d in DeadLetterStore(get_store(), bucket("dead-letters")).list()]
    )
    assert [(d.function, d.error.type) for d in forged] == [("ingest_stock", "PermanentError")]
    assert "for partner 'acme'" in forged[0].error.message
    assert "bound to partner 'initech'" in forged[0].error.message
    assert item("YOGA-MAT-4MM", "eu", "de-DE")["available"] == 15

    # the archive holds every record of every topic exactly once
    def archive_complete() -> bool:
        on_topics = Counter()
        for topic in get_bus().list_topics():
            for r in get_bus().read_all(topic, timeout_s=1):
                on_topics[(r.topic, r.partition, r.offset)] += 1
        archived = Counter(
            (line["kafka"]["topic"], line["kafka"]["partition"], line["kafka"]["offset"])
            for line in _archived()
        )
        return on_topics == archived and sum(archived.values()) > 0

    eventually(archive_complete, timeout_s=30, interval_s=1)
    archived = _archived()
    ids = Counter(line["id"] for line in archived if "id" in line)
    assert not [i for i, n in ids.items() if n > 1]
    types = {line.get("type") for line in archived}
    assert {
        "com.retailfn.inventory.stock-reported.v1",
        "com.retailfn.inventory.stock-changed.v1",
        "com.retailfn.catalog.product-introduced.v1",
    } <= types
