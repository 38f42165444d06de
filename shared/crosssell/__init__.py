"""Cross-sell and up-sell: the pure rules (:mod:`.rules`), the versions of the per-region
co-occurrence model in object storage (:mod:`.store`), and what ``recommend`` answers
(:mod:`.recommendations`, which reads :mod:`shared.inventory` for live stock).

``recommend`` reads ``CrossSellStore().current()`` and asks ``.region(r).iter_complements(sku)``;
``recalc_cross_sell`` calls ``fold_archive_object``; ``retailfn crosssell rebuild`` calls
``rebuild``. The counting itself is pure and lives in :mod:`shared.crosssell.rules.cooccurrence`.
"""

from __future__ import annotations

from shared.crosssell.store import (
    ORDER_PREFIXES,
    ORDER_TOPICS,
    ConcurrentFoldsExhausted,
    CrossSellStore,
    FoldOutcome,
    Manifest,
    ModelSet,
    is_order_archive,
    read_orders,
)

__all__ = [
    "ORDER_PREFIXES",
    "ORDER_TOPICS",
    "ConcurrentFoldsExhausted",
    "CrossSellStore",
    "FoldOutcome",
    "Manifest",
    "ModelSet",
    "is_order_archive",
    "read_orders",
]
