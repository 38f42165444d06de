"""Order identity for the cross-sell model: which orders a model version has counted.

An order is identified by its ``order_id`` alone, whatever carried it: the same order published
again (same event id or a new one, on ``sales.order-completed`` or on ``pos.checkout-completed``)
is one basket. A version keeps the ids it counted as a sorted array of 64-bit digests
(BLAKE2b of the id): 8 bytes an order (8 MB at a million orders), membership and union are
vectorized searches and merges. Two different ids share a digest with probability about
``n**2 / 2**65`` (1 in 37 million at a million orders); the later of such a pair would be taken
for a copy. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable

import numpy as np

_PERSON = b"retailfn-order"


def order_keys(order_ids: Iterable[str]) -> np.ndarray:
    """The 64-bit digest of each id, in the given order."""
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(i.encode(), digest_size=8, person=_PERSON).digest(), "big"
            )
            for i in order_ids
        ),
        dtype=np.uint64,
    )


class CountedOrders:
    """An immutable set of order digests (sorted, unique ``uint64``)."""

    __slots__ = ("keys",)

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys

    @classmethod
    def empty(cls) -> CountedOrders:
        return cls(np.zeros(0, dtype=np.uint64))

    @classmethod
    def of(cls, keys: np.ndarray) -> CountedOrders:
        return cls(np.unique(np.asarray(keys, dtype=np.uint64)))

    def __len__(self) -> int:
        return len(self.keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CountedOrders):
            return NotImplemented
        return np.array_equal(self.keys, other.keys)

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the arrays it holds

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Per key: whether it is in the set."""
        keys = np.asarray(keys, dtype=np.uint64)
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found: np.ndarray = self.keys[at] == keys
        return found

    def union(self, keys: np.ndarray) -> CountedOrders:
        return CountedOrders(np.union1d(self.keys, np.asarray(keys, dtype=np.uint64)))

    def to_bytes(self) -> bytes:
        """An ``.npy`` array; equal sets give equal bytes."""
        buffer = io.BytesIO()
        np.lib.format.write_array(
            buffer, np.ascontiguousarray(self.keys, dtype="<u8"), allow_pickle=False
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CountedOrders:
        keys = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        if keys.dtype != np.dtype("<u8") or keys.ndim != 1:
            raise ValueError("not a set of order digests")
        return cls(keys.astype(np.uint64, copy=False))
