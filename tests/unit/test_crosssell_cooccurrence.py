"""Cross-sell counting and scores: exact on hand-sized baskets, order-free under decay."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from shared.crosssell.rules.cooccurrence import (
    Baskets,
    Complement,
    CrossSellModel,
    build,
    fold,
    merge,
)

BASKETS = [
    ["YOGA-PANTS", "YOGA-MAT"],
    ["YOGA-PANTS", "YOGA-MAT", "WATER-BOTTLE"],
    ["YOGA-PANTS", "WATER-BOTTLE"],
    ["YOGA-MAT"],
    ["SAFFRON"],
]


def test_counts_baskets_items_and_unordered_pairs_exactly() -> None:
    model = build(Baskets.of(BASKETS))
    assert model.basket_count == 5
    assert [model.item_count(s) for s in ("YOGA-PANTS", "YOGA-MAT", "WATER-BOTTLE", "SAFFRON")] == [
        3,
        3,
        2,
        1,
    ]
    assert model.pair_count("YOGA-PANTS", "YOGA-MAT") == 2
    assert model.pair_count("YOGA-MAT", "YOGA-PANTS") == 2
    assert model.pair_count("YOGA-MAT", "WATER-BOTTLE") == 1
    assert model.pair_count("SAFFRON", "YOGA-MAT") == 0
    assert model.item_count("UNKNOWN") == 0
    assert model.pair_total == 3
    assert list(model.skus) == sorted({s for b in BASKETS for s in b})


def test_an_item_repeated_in_a_basket_counts_once() -> None:
    model = build(Baskets.of([["A-1", "B-1", "A-1", "A-1"], ["A-1"]]))
    assert model.item_count("A-1") == 2
    assert model.pair_count("A-1", "B-1") == 1
    assert model.pair_count("A-1", "A-1") == 0


def test_folding_two_halves_equals_building_the_whole() -> None:
    rng = random.Random(7)
    skus = [f"SKU-{n:03d}" for n in range(40)]
    baskets = [rng.sample(skus, rng.randint(1, 6)) for _ in range(300)]
    whole = build(Baskets.of(baskets))
    halves = fold(build(Baskets.of(baskets[:120])), Baskets.of(baskets[120:]))
    reversed_halves = fold(build(Baskets.of(baskets[120:])), Baskets.of(baskets[:120]))
    assert halves == whole == reversed_halves
    assert halves.to_bytes() == whole.to_bytes() == reversed_halves.to_bytes()


def test_folding_into_an_empty_model_equals_building() -> None:
    assert fold(CrossSellModel.empty(), Baskets.of(BASKETS)) == build(Baskets.of(BASKETS))


def test_merge_of_models_sums_their_counts() -> None:
    a, b = build(Baskets.of(BASKETS[:2])), build(Baskets.of(BASKETS[2:]))
    assert merge(a, b) == build(Baskets.of(BASKETS))


def test_bytes_round_trip_and_are_deterministic() -> None:
    model = build(Baskets.of(BASKETS))
    data = model.to_bytes()
    again = CrossSellModel.from_bytes(data)
    assert again == model
    assert again.to_bytes() == data
    assert CrossSellModel.from_bytes(CrossSellModel.empty().to_bytes()) == CrossSellModel.empty()


def test_scores_of_an_ordered_pair() -> None:
    model = build(Baskets.of(BASKETS))
    mat = {c.sku: c for c in model.complements("YOGA-PANTS", 5)}["YOGA-MAT"]
    # N=5, n_pants=3, n_mat=3, n_pants_mat=2
    assert mat == Complement(
        "YOGA-MAT", support=2 / 5, confidence=2 / 3, lift=(2 / 3) / (3 / 5), pair_count=2
    )
    [pants] = [c for c in model.complements("WATER-BOTTLE") if c.sku == "YOGA-PANTS"]
    assert (pants.confidence, pants.lift) == (1.0, 1.0 / (3 / 5))


def test_complements_are_ranked_by_lift_then_confidence_then_sku() -> None:
    model = build(Baskets.of(BASKETS))
    ranked = model.complements("YOGA-PANTS", 5)
    assert [c.sku for c in ranked] == ["WATER-BOTTLE", "YOGA-MAT"]
    assert ranked[0].lift == pytest.approx((2 / 3) / (2 / 5))
    tie = build(Baskets.of([["A-1", "C-1"], ["A-1", "B-1"]]))
    assert [c.sku for c in tie.complements("A-1")] == ["B-1", "C-1"]


def test_thresholds_drop_rare_pairs() -> None:
    model = build(Baskets.of(BASKETS))
    assert [c.sku for c in model.complements("YOGA-PANTS", min_count=2)] == [
        "WATER-BOTTLE",
        "YOGA-MAT",
    ]
    assert [c.sku for c in model.complements("YOGA-MAT", min_count=2)] == ["YOGA-PANTS"]
    assert [c.sku for c in model.complements("YOGA-MAT", min_support=0.3)] == ["YOGA-PANTS"]
    assert model.complements("YOGA-PANTS", k=1)[0].sku == "WATER-BOTTLE"
    assert model.complements("UNKNOWN") == []
    assert model.complements("SAFFRON") == []


def test_top_items_are_the_best_sellers_optionally_within_a_set() -> None:
    model = build(Baskets.of(BASKETS))
    assert [(i.sku, i.count) for i in model.top_items(3)] == [
        ("YOGA-MAT", 3),
        ("YOGA-PANTS", 3),
        ("WATER-BOTTLE", 2),
    ]
    assert [i.sku for i in model.top_items(5, skus=["SAFFRON", "WATER-BOTTLE", "NOPE"])] == [
        "WATER-BOTTLE",
        "SAFFRON",
    ]
    assert model.top_items(2)[0].support == 3 / 5


DAY = 86_400.0


def test_decay_halves_a_basket_per_half_life_and_fold_order_does_not_matter() -> None:
    t0 = 1_795_737_600.0
    baskets = [["A-1", "B-1"], ["A-1", "C-1"], ["B-1", "C-1"], ["A-1", "B-1", "C-1"]]
    times = [t0 - 60 * DAY, t0 - 30 * DAY, t0 - 1 * DAY, t0]
    whole = build(Baskets.of(baskets, times), half_life_days=30)
    forward = whole.empty(30)
    for b, t in zip(baskets, times, strict=True):
        forward = fold(forward, Baskets.of([b], [t]))
    backward = whole.empty(30)
    for b, t in reversed(list(zip(baskets, times, strict=True))):
        backward = fold(backward, Baskets.of([b], [t]))
    for model in (forward, backward):
        assert list(model.skus) == list(whole.skus)
        assert model.basket_count == pytest.approx(whole.basket_count, rel=1e-12)
        for sku in ("A-1", "B-1", "C-1"):
            assert model.item_count(sku) == pytest.approx(whole.item_count(sku), rel=1e-12)
    # Normalized to the newest basket: it weighs 1, one 30 days older 1/2, 60 days 1/4.
    assert whole.item_count("A-1") == pytest.approx(0.25 + 0.5 + 1)
    assert whole.pair_count("A-1", "B-1") == pytest.approx(0.25 + 1)
    assert whole.basket_count == pytest.approx(0.25 + 0.5 + 2 ** (-1 / 30) + 1)
    assert CrossSellModel.from_bytes(whole.to_bytes()) == whole


def test_decay_without_completion_times_is_refused() -> None:
    with pytest.raises(ValueError):
        build(Baskets.of([["A-1", "B-1"]]), half_life_days=30)


def test_models_with_different_half_lives_do_not_merge() -> None:
    with pytest.raises(ValueError):
        merge(CrossSellModel.empty(), CrossSellModel.empty(30))


# --- ranking on exact counts ---------------------------------------------------------------------


def baskets_of(*groups: tuple[int, list[str]]) -> list[list[str]]:
    return [list(basket) for times, basket in groups for _ in range(times)]


# N=20, A in 5. B-LOW: with A once, in 3 baskets; C-HIGH: with A 3 times, in 9 baskets. Both
# lifts are exactly 4/3 (1/3 = 3/9), but the float of the first is one ulp above the second's.
EQUAL_LIFTS = baskets_of(
    (1, ["A-1", "B-LOW"]),
    (3, ["A-1", "C-HIGH"]),
    (1, ["A-1"]),
    (2, ["B-LOW"]),
    (6, ["C-HIGH"]),
    (7, ["Z-FILL"]),
)


def test_equal_lifts_tie_exactly_and_the_higher_confidence_comes_first() -> None:
    model = build(Baskets.of(EQUAL_LIFTS))
    ranked = model.complements("A-1")
    assert [c.sku for c in ranked] == ["C-HIGH", "B-LOW"]
    assert [c.confidence for c in ranked] == [3 / 5, 1 / 5]
    assert [c.sku for c in model.complements("A-1", 1)] == ["C-HIGH"]


def test_equal_lifts_and_confidences_fall_back_to_the_sku() -> None:
    model = build(
        Baskets.of(
            baskets_of(
                (2, ["A-1", "D-1"]),
                (2, ["A-1", "C-1"]),
                (1, ["D-1"]),
                (1, ["C-1"]),
                (4, ["Z-FILL"]),
            )
        )
    )
    for by in ("lift", "confidence", "support"):
        assert [c.sku for c in model.complements("A-1", by=by)] == ["C-1", "D-1"]


def test_lifts_closer_than_float_precision_are_still_ordered_exactly() -> None:
    # B-1's n_ab/n_b is above C-1's by ~6e-18, less than half an ulp: both round to the same
    # float, and only the exact ratio keeps B-1 (the lower confidence) first.
    b_ab, b_n, c_ab, c_n = 399_980_001, 400_000_000, 400_000_001, 400_020_001
    assert b_ab / b_n == c_ab / c_n and b_ab * c_n > c_ab * b_n
    pairs = sp.csr_matrix(([b_ab, c_ab], ([0, 0], [1, 2])), shape=(3, 3), dtype=np.int64)
    model = CrossSellModel(
        np.array(["A-1", "B-1", "C-1"]),
        np.array([900_000_000, b_n, c_n], dtype=np.int64),
        pairs,
        np.int64(1_000_000_000),
    )
    assert [c.sku for c in model.complements("A-1")] == ["B-1", "C-1"]
    assert [c.sku for c in model.complements("A-1", by="confidence")] == ["C-1", "B-1"]


def test_the_confidence_ranking_breaks_equal_confidences_by_the_exact_lift() -> None:
    # N=20, A in 4; B-1 and C-1 each with A twice; B-1 in 8 baskets, C-1 in 3: C-1's lift is higher
    model = build(
        Baskets.of(
            baskets_of(
                (2, ["A-1", "B-1"]),
                (2, ["A-1", "C-1"]),
                (6, ["B-1"]),
                (1, ["C-1"]),
                (9, ["Z-FILL"]),
            )
        )
    )
    assert [c.sku for c in model.complements("A-1", by="confidence")] == ["C-1", "B-1"]
    assert [c.sku for c in model.complements("A-1", by="support")] == ["B-1", "C-1"]


def popular_item_baskets(niche: int = 60) -> list[list[str]]:
    """1000 baskets. HOT is in 300; each of ``niche`` rare items is in 10 baskets, all with HOT
    (lift 3.3, confidence 3.3 %); the staples S-1, S-2, S-3 are in 700 baskets each, with HOT in
    270, 260 and 250 of them (confidence 90 %, 87 % and 83 %, lift 1.29, 1.24 and 1.19)."""
    hot = [["HOT"] for _ in range(300)]
    for h, basket in enumerate(hot):
        basket += [s for s, n in (("S-1", 270), ("S-2", 260), ("S-3", 250)) if h < n]
    for i in range(niche):
        for j in range(10):
            hot[(i * 10 + j) % 300].append(f"NICHE-{i:03d}")
    rest = [
        [s for s, n in (("S-1", 430), ("S-2", 440), ("S-3", 450)) if k < n] or ["Z-FILL"]
        for k in range(700)
    ]
    return hot + rest


def test_the_confidence_ranking_ranks_all_complements_not_the_highest_lifts() -> None:
    model = build(Baskets.of(popular_item_baskets()))
    everything = model.complements("HOT", None, by="confidence", min_lift=1.0)
    assert len(everything) == 63
    assert [c.sku for c in everything[:3]] == ["S-1", "S-2", "S-3"]
    assert everything[0].lift < everything[3].lift  # high confidence, low lift
    assert [c.sku for c in model.complements("HOT", 3, by="confidence", min_support=0.01)] == [
        "S-1",
        "S-2",
        "S-3",
    ]
    assert [c.sku for c in model.complements("HOT", 2, by="lift")] == ["NICHE-000", "NICHE-001"]


def test_thresholds_apply_before_the_top_k_is_taken() -> None:
    model = build(Baskets.of(popular_item_baskets()))
    # the 60 rare items have the highest lifts but fail a minimum count of 11
    assert [c.sku for c in model.complements("HOT", 3, min_count=11)] == ["S-1", "S-2", "S-3"]
    assert len(model.complements("HOT", None, min_lift=1.25)) == 61  # S-1 is 1.29
    assert "S-3" not in {c.sku for c in model.complements("HOT", None, min_lift=1.2)}


@pytest.mark.parametrize("huge", [False, True])
def test_the_lift_order_is_the_order_of_the_exact_fractions_on_random_counts(huge: bool) -> None:
    from fractions import Fraction

    rng = random.Random(11)
    n = 400
    skus = np.array(["A-0"] + [f"B-{i:03d}" for i in range(n)])
    # small counts with many equal ratios, with or without huge ones beside them
    n_b = np.array(
        [
            rng.choice([rng.randint(1, 12), rng.randint(2**40, 2**40 + 50)])
            if huge
            else rng.randint(1, 12)
            for _ in range(n)
        ],
        dtype=np.int64,
    )
    n_ab = np.array(
        [rng.randint(1, int(b)) if b < 100 else int(b) - rng.randint(0, 40) for b in n_b],
        dtype=np.int64,
    )
    pairs = sp.csr_matrix(
        (n_ab, (np.zeros(n, dtype=np.int64), np.arange(1, n + 1))), shape=(n + 1, n + 1)
    )
    model = CrossSellModel(skus, np.concatenate([[2**41], n_b]), pairs, np.int64(2**42))
    expected = sorted(
        range(n), key=lambda j: (-Fraction(int(n_ab[j]), int(n_b[j])), -n_ab[j], skus[j + 1])
    )
    assert [c.sku for c in model.complements("A-0", None)] == [str(skus[j + 1]) for j in expected]
