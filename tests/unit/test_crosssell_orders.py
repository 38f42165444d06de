"""The set of counted order ids: digests, membership, union and bytes."""

from __future__ import annotations

import numpy as np

from shared.crosssell.orders import CountedOrders, order_keys


def test_an_order_id_always_has_the_same_digest_and_different_ids_differ() -> None:
    keys = order_keys(["ORD-1", "ORD-2", "ORD-1"])
    assert keys.dtype == np.uint64 and keys[0] == keys[2] != keys[1]
    assert order_keys(["ORD-1"])[0] == keys[0]


def test_membership_and_union() -> None:
    counted = CountedOrders.of(order_keys(["ORD-1", "ORD-3"]))
    asked = order_keys(["ORD-1", "ORD-2", "ORD-3", "ORD-4"])
    assert counted.contains(asked).tolist() == [True, False, True, False]
    more = counted.union(order_keys(["ORD-2", "ORD-3"]))
    assert len(more) == 3 and more.contains(asked).tolist() == [True, True, True, False]
    assert len(counted) == 2  # immutable
    assert CountedOrders.empty().contains(asked).tolist() == [False] * 4


def test_equal_sets_give_equal_bytes_whatever_the_order_they_were_built_in() -> None:
    ids = [f"ORD-{n}" for n in range(1000)]
    forward = CountedOrders.of(order_keys(ids[:600])).union(order_keys(ids[400:]))
    backward = CountedOrders.of(order_keys(ids[::-1]))
    assert forward == backward and forward.to_bytes() == backward.to_bytes()
    assert CountedOrders.from_bytes(forward.to_bytes()) == forward
