from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from events.recommendations import RecommendationClicked, RecommendationShown
from events.sales import OrderCompleted, OrderLine
from shared.crosssell.rules.experiments import (
    Experiment,
    ExperimentsConfig,
    Variant,
    VariantReport,
    assign,
    report,
)

RANKING = Experiment(
    name="xsell-ranking",
    control="a",
    variants=(
        Variant(name="a", weight=70, strategy="confidence"),
        Variant(name="b", weight=30, strategy="lift", limit=3),
    ),
)
T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_the_same_user_always_gets_the_same_variant() -> None:
    first = [assign(RANKING, f"user-{n}").name for n in range(500)]
    again = [assign(RANKING, f"user-{n}").name for n in range(500)]

    assert first == again


def test_assignment_follows_the_weights_over_ten_thousand_users() -> None:
    counts = Counter(assign(RANKING, f"M-{n:05d}").name for n in range(10_000))

    assert 6_800 <= counts["a"] <= 7_200  # 70 % +- 2 points (about 4.4 standard deviations)
    assert 2_800 <= counts["b"] <= 3_200


def test_experiments_split_users_independently() -> None:
    other = RANKING.model_copy(update={"name": "xsell-length"})
    same = sum(assign(RANKING, f"u{n}").name == assign(other, f"u{n}").name for n in range(4000))

    # independent 70/30 splits agree for 0.7^2 + 0.3^2 = 58 % of users
    assert 0.54 <= same / 4000 <= 0.62


def test_a_request_without_a_user_gets_the_control_variant() -> None:
    assert assign(RANKING, None).name == "a"
    assert assign(RANKING.model_copy(update={"control": "b"}), None).name == "b"


def test_a_variant_with_weight_zero_gets_nobody() -> None:
    paused = Experiment(
        name="x", variants=(Variant(name="a", weight=1), Variant(name="b", weight=0))
    )

    assert {assign(paused, f"u{n}").name for n in range(1000)} == {"a"}


def test_configuration_mistakes_are_refused() -> None:
    with pytest.raises(ValidationError, match="repeat"):
        Experiment(name="x", variants=(Variant(name="a"), Variant(name="a")))
    with pytest.raises(ValidationError, match="control"):
        Experiment(name="x", control="z", variants=(Variant(name="a"),))
    with pytest.raises(ValidationError):
        Variant(name="a", strategy="popularity")  # type: ignore[arg-type]


def test_the_first_active_experiment_runs_and_none_means_the_default() -> None:
    config = ExperimentsConfig(
        experiments=(
            RANKING.model_copy(update={"active": False}),
            RANKING.model_copy(update={"name": "second"}),
        )
    )

    assert config.running().name == "second"
    assert ExperimentsConfig().running().name == "default"


def shown(
    request: str, user: str | None, variant: str, skus: tuple[str, ...], at: datetime = T0
) -> RecommendationShown:
    return RecommendationShown(
        request_id=request,
        user_id=user,
        sku="YOGA-PANTS",
        region="eu",
        kind="cross_sell",
        recommended_skus=skus,
        experiment="xsell-ranking",
        variant=variant,
        shown_at=at,
    )


def click(request: str, user: str | None, variant: str, sku: str) -> RecommendationClicked:
    return RecommendationClicked(
        request_id=request,
        user_id=user,
        sku=sku,
        source_sku="YOGA-PANTS",
        kind="cross_sell",
        experiment="xsell-ranking",
        variant=variant,
        clicked_at=T0,
    )


def order(order_id: str, customer: str | None, skus: list[str], at: datetime) -> OrderCompleted:
    return OrderCompleted(
        order_id=order_id,
        customer_id=customer,
        channel="web",
        region="eu",
        country="DE",
        currency="EUR",
        completed_at=at,
        lines=tuple(OrderLine(sku=s, quantity=Decimal(1), unit_price=Decimal(10)) for s in skus),
    )


def test_the_report_counts_shown_clicked_click_through_and_orders_per_variant() -> None:
    events_shown = [
        shown("r1", "u1", "a", ("YOGA-MAT", "YOGA-BLOCK")),
        shown("r2", "u2", "a", ("YOGA-MAT",)),
        shown("r3", None, "a", ("YOGA-MAT",)),
        shown("r4", "u3", "b", ("YOGA-BLOCK",)),
        shown("r5", "u3", "b", ("YOGA-MAT",), at=T0 + timedelta(hours=1)),
    ]
    clicks = [
        click("r1", "u1", "a", "YOGA-MAT"),
        click("r1", "u1", "a", "YOGA-MAT"),  # double
        click("r1", "u1", "a", "YOGA-BLOCK"),
        click("r4", "u3", "b", "YOGA-BLOCK"),
    ]
    orders = [
        order("o1", "u1", ["YOGA-MAT", "TOWEL"], T0 + timedelta(hours=2)),  # a: converted
        order("o2", "u2", ["TOWEL"], T0 + timedelta(hours=2)),  # nothing shown
        order("o3", "u3", ["YOGA-MAT"], T0 + timedelta(minutes=30)),  # before r5
        order("o4", "u3", ["YOGA-BLOCK"], T0 + timedelta(minutes=30)),  # b: after r4
        order("o5", "u9", ["YOGA-MAT"], T0 + timedelta(hours=2)),  # never shown
        order("o6", "u2", ["YOGA-MAT"], T0 - timedelta(hours=1)),  # before shown
    ]

    rows = report(events_shown, clicks, orders, variants=[("xsell-ranking", "c")])

    assert rows == [
        VariantReport(
            "xsell-ranking",
            "a",
            shown=3,
            items_shown=4,
            users=2,
            clicks=2,
            clicked=1,
            click_through_rate=1 / 3,
            orders=1,
            order_rate=0.5,
        ),
        VariantReport(
            "xsell-ranking",
            "b",
            shown=2,
            items_shown=2,
            users=1,
            clicks=1,
            clicked=1,
            click_through_rate=0.5,
            orders=1,
            order_rate=1.0,
        ),
        VariantReport(
            "xsell-ranking",
            "c",
            shown=0,
            items_shown=0,
            users=0,
            clicks=0,
            clicked=0,
            click_through_rate=0.0,
            orders=0,
            order_rate=0.0,
        ),
    ]


def test_the_report_keeps_only_the_asked_experiment_and_honours_the_window() -> None:
    other = shown("r9", "u1", "a", ("YOGA-MAT",)).model_copy(update={"experiment": "other"})
    late = order("o1", "u1", ["YOGA-MAT"], T0 + timedelta(days=10))

    rows = report(
        [shown("r1", "u1", "a", ("YOGA-MAT",)), other],
        [],
        [late],
        experiment="xsell-ranking",
        window=timedelta(days=7),
    )

    assert [(r.experiment, r.variant, r.orders) for r in rows] == [("xsell-ranking", "a", 0)]
