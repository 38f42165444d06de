"""Cross-sell: which items are bought together, and how strongly, in one region's baskets.

A :class:`CrossSellModel` holds the sufficient statistics of association rules of size two:
the basket count ``N``, a count ``n_a`` per item and a count ``n_ab`` per unordered pair. A basket
counts an item or a pair once however many units it holds. The item index is the sorted list of
SKUs, so two models that counted the same baskets are equal array for array (and byte for byte
once serialized), whatever order the baskets were folded in.

Counting is sparse linear algebra: baskets become a CSR indicator matrix ``X`` (baskets x items,
duplicates collapsed); item counts are its column sums and pair counts the strict upper triangle
of ``X^T X``. :func:`fold` adds baskets to a model, :func:`merge` adds two models.

Time decay (optional): a basket completed at ``t`` weighs ``2 ** ((t - EPOCH) / half_life)``
against the fixed :data:`EPOCH`, so a weight never depends on when it was folded and fold order
does not matter. Scores are ratios, so the scale cancels; counts are reported normalized to the
newest basket seen (that basket weighs 1). Without decay every count is an exact integer.

Scores of the ordered pair a -> b: ``support = n_ab / N``, ``confidence = n_ab / n_a``,
``lift = confidence / (n_b / N)``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from itertools import islice
from typing import Literal

import numpy as np
import scipy.sparse as sp

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Fixed reference time of decay weights (a basket completed then weighs 1)."""
_EPOCH_S = EPOCH.timestamp()
_DAY_S = 86_400.0
_FORMAT = 1

Ranking = Literal["lift", "confidence", "support"]
"""What a complement list is ordered by (the A/B variants' ``strategy``)."""


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass(frozen=True, eq=False)
class Baskets:
    """Baskets in columnar form: basket ``i`` holds ``skus[codes[indptr[i]:indptr[i + 1]]]``.

    ``skus`` must not repeat (a repeated code within a basket is fine: it counts once). ``at``
    holds each basket's completion time (Unix seconds), needed only for time decay.
    """

    skus: np.ndarray
    indptr: np.ndarray
    codes: np.ndarray
    at: np.ndarray | None = None

    @classmethod
    def of(
        cls, baskets: Iterable[Iterable[str]], at: Iterable[datetime | float] | None = None
    ) -> Baskets:
        """From plain lists of SKUs (and optionally a completion time per basket)."""
        index: dict[str, int] = {}
        indptr, codes = [0], []
        for basket in baskets:
            for sku in basket:
                codes.append(index.setdefault(sku, len(index)))
            indptr.append(len(codes))
        times = None if at is None else np.array([_seconds(t) for t in at], dtype=np.float64)
        if times is not None and len(times) != len(indptr) - 1:
            raise ValueError("one completion time per basket")
        return cls(
            np.array(list(index), dtype=str),
            np.array(indptr, dtype=np.int64),
            np.array(codes, dtype=np.int64),
            times,
        )

    @classmethod
    def empty(cls) -> Baskets:
        return cls.of([])

    def __len__(self) -> int:
        return len(self.indptr) - 1


@dataclass(frozen=True)
class Complement:
    """``sku`` bought with the queried item: the scores of the rule item -> sku."""

    sku: str
    support: float
    confidence: float
    lift: float
    pair_count: float
    """Baskets holding both (decay-weighted and normalized when decay is on)."""


@dataclass(frozen=True)
class ItemStat:
    sku: str
    count: float
    support: float


class CrossSellModel:
    """Co-occurrence counts of one region. Immutable: :func:`fold` and :func:`merge` return new
    models. Build one with :func:`build` or :meth:`empty`."""

    __slots__ = ("_sym", "baskets", "half_life_days", "items", "latest_at", "pairs", "skus")

    def __init__(
        self,
        skus: np.ndarray,
        items: np.ndarray,
        pairs: sp.csr_matrix,
        baskets: float | np.int64,
        half_life_days: float | None = None,
        latest_at: float | None = None,
    ) -> None:
        self.skus = skus
        """Sorted SKUs; position = index into ``items`` and ``pairs``."""
        self.items = items
        self.pairs = pairs
        """Strict upper triangle (``i < j``) of the pair counts, canonical CSR."""
        self.baskets = baskets
        """How many baskets: ``np.int64`` exact, ``np.float64`` weighted when decay is on."""
        self.half_life_days = half_life_days
        self.latest_at = latest_at
        """Newest basket completion time seen (Unix seconds); decay normalizes to it."""
        self._sym: sp.csr_matrix | None = None

    @classmethod
    def empty(cls, half_life_days: float | None = None) -> CrossSellModel:
        dtype = np.int64 if half_life_days is None else np.float64
        return cls(
            np.array([], dtype=str),
            np.zeros(0, dtype=dtype),
            # scipy-stubs type an empty csr_matrix of a shape as float64 only (csr_array: any).
            sp.csr_matrix((0, 0), dtype=dtype),  # type: ignore[arg-type]  # scipy-stubs gap
            dtype(0),
            half_life_days,
            None,
        )

    # --- reading ---------------------------------------------------------------------------

    @property
    def decay(self) -> bool:
        return self.half_life_days is not None

    def _scale(self) -> float:
        if self.half_life_days is None or self.latest_at is None:
            return 1.0
        return float(2.0 ** ((self.latest_at - _EPOCH_S) / (self.half_life_days * _DAY_S)))

    @property
    def basket_count(self) -> float | np.int64:
        """Baskets counted (normalized weight when decay is on)."""
        return self.baskets / self._scale() if self.decay else self.baskets

    @property
    def item_total(self) -> int:
        return len(self.skus)

    @property
    def pair_total(self) -> int:
        return int(self.pairs.nnz)

    def _index(self, sku: str) -> int | None:
        i = int(np.searchsorted(self.skus, sku))
        return i if i < len(self.skus) and self.skus[i] == sku else None

    def __contains__(self, sku: str) -> bool:
        return self._index(sku) is not None

    def item_count(self, sku: str) -> float:
        """Baskets holding ``sku``; 0 for an item never seen."""
        i = self._index(sku)
        if i is None:
            return 0
        value = self.items[i]
        return value / self._scale() if self.decay else int(value)

    def pair_count(self, a: str, b: str) -> float:
        i, j = self._index(a), self._index(b)
        if i is None or j is None or i == j:
            return 0
        value = self.pairs[min(i, j), max(i, j)]
        return value / self._scale() if self.decay else int(value)

    def _symmetric(self) -> sp.csr_matrix:
        # Rows of both triangles, built once per model: complements() reads one row of it.
        if self._sym is None:
            self._sym = (self.pairs + self.pairs.T).tocsr()
            self._sym.sort_indices()
        return self._sym

    def complements(
        self,
        sku: str,
        k: int | None = 10,
        *,
        by: Ranking = "lift",
        min_support: float = 0.0,
        min_count: float = 0,
        min_lift: float | None = None,
    ) -> list[Complement]:
        """The top ``k`` items bought with ``sku`` (all of them when ``k`` is None), best first.

        See :meth:`iter_complements` for the thresholds and the order.
        """
        if k is not None and k <= 0:
            return []
        return list(
            islice(
                self.iter_complements(
                    sku, by=by, min_support=min_support, min_count=min_count, min_lift=min_lift
                ),
                k,
            )
        )

    def iter_complements(
        self,
        sku: str,
        *,
        by: Ranking = "lift",
        min_support: float = 0.0,
        min_count: float = 0,
        min_lift: float | None = None,
    ) -> Iterator[Complement]:
        """Every item bought with ``sku`` that passes the thresholds, best first, built lazily.

        Only pairs with ``support >= min_support``, ``pair_count >= min_count`` and (if given)
        ``lift > min_lift``; the thresholds apply before ranking, so every complement that passes
        them is ranked. Order by ``by`` (within one item's list ``n_a`` and ``N`` are constant,
        so lift orders as ``n_ab / n_b`` and confidence and support as ``n_ab``), compared on
        those exact counts rather than on rounded scores, so equal scores tie exactly:

        * ``lift``: lift, then confidence, then SKU;
        * ``confidence``: confidence, then lift, then SKU;
        * ``support``: support (then confidence, the same order within one list), then SKU.
        """
        i = self._index(sku)
        if i is None or not self.baskets:
            return
        sym = self._symmetric()
        start, end = sym.indptr[i], sym.indptr[i + 1]
        others = sym.indices[start:end]
        n_ab = sym.data[start:end]
        n_b = self.items[others]
        n, n_a = float(self.baskets), float(self.items[i])
        support = n_ab / n
        confidence = n_ab / n_a
        lift = confidence / (n_b / n)
        scale = self._scale()
        counts = n_ab / scale
        keep = (support >= min_support) & (counts >= min_count)
        if min_lift is not None:
            keep &= lift > min_lift
        others, n_ab, n_b = others[keep], n_ab[keep], n_b[keep]
        support, confidence, lift, counts = (
            support[keep],
            confidence[keep],
            lift[keep],
            counts[keep],
        )
        # np.lexsort: the last key is the primary one; descending by negating the exact counts
        # and the exact dense rank of n_ab / n_b; ``others`` ascending is SKU order (sorted index).
        if by == "lift":
            keys: tuple[np.ndarray, ...] = (others, -n_ab, -_exact_ratio_ranks(n_ab, n_b))
        elif by == "confidence":
            keys = (others, -_exact_ratio_ranks(n_ab, n_b), -n_ab)
        elif by == "support":
            keys = (others, -n_ab)
        else:
            raise ValueError(f"unknown ranking {by!r}")
        for o in np.lexsort(keys):
            yield Complement(
                str(self.skus[others[o]]),
                float(support[o]),
                float(confidence[o]),
                float(lift[o]),
                int(counts[o]) if not self.decay else float(counts[o]),
            )

    def top_items(self, k: int = 10, skus: Iterable[str] | None = None) -> list[ItemStat]:
        """Best sellers (most baskets first, then SKU), optionally among ``skus`` only."""
        if skus is None:
            candidates = np.arange(len(self.skus))
        else:
            found = [self._index(s) for s in skus]
            candidates = np.array(sorted({i for i in found if i is not None}), dtype=np.int64)
        if not len(candidates) or k <= 0:
            return []
        counts = self.items[candidates]
        order = np.lexsort((candidates, -counts))[:k]
        scale, n = self._scale(), float(self.baskets)
        return [
            ItemStat(
                str(self.skus[candidates[o]]),
                float(counts[o]) / scale if self.decay else int(counts[o]),
                float(counts[o]) / n,
            )
            for o in order
        ]

    # --- identity and bytes ----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossSellModel):
            return NotImplemented
        return (
            self.half_life_days == other.half_life_days
            and self.latest_at == other.latest_at
            and self.baskets == other.baskets
            and np.array_equal(self.skus, other.skus)
            and np.array_equal(self.items, other.items)
            and self.pairs.shape == other.pairs.shape
            and np.array_equal(self.pairs.indptr, other.pairs.indptr)
            and np.array_equal(self.pairs.indices, other.pairs.indices)
            and np.array_equal(self.pairs.data, other.pairs.data)
        )

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the arrays it holds

    def __repr__(self) -> str:
        return (
            f"CrossSellModel(baskets={self.basket_count}, items={self.item_total}, "
            f"pairs={self.pair_total}, half_life_days={self.half_life_days})"
        )

    def to_bytes(self) -> bytes:
        """An ``.npz`` archive; equal models give equal bytes (fixed zip timestamps)."""
        coo = self.pairs.tocoo()
        meta = {
            "format": _FORMAT,
            "baskets": self.baskets.item() if hasattr(self.baskets, "item") else self.baskets,
            "half_life_days": self.half_life_days,
            "latest_at": self.latest_at,
        }
        counts = coo.data
        if not self.decay and len(counts):
            # Exact integers: the smallest unsigned type that holds them (deterministic).
            counts = counts.astype(np.min_scalar_type(int(counts.max())))
        arrays = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
            "skus": np.frombuffer(
                json.dumps(self.skus.tolist(), separators=(",", ":")).encode(), dtype=np.uint8
            ),
            "items": self.items,
            "pair_rows": coo.row.astype(np.int32),
            "pair_cols": coo.col.astype(np.int32),
            "pair_counts": counts,
        }
        # Stored, not deflated: compressing a large model costs more than the fold itself.
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(
                        member, np.ascontiguousarray(array), allow_pickle=False
                    )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CrossSellModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes())
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown cross-sell model format {meta.get('format')!r}")
            skus = np.array(json.loads(npz["skus"].tobytes()), dtype=str)
            items = npz["items"]
            rows, cols = npz["pair_rows"], npz["pair_cols"]
            counts = npz["pair_counts"].astype(items.dtype)
        # Written in canonical row-major order, so CSR needs no sort: count rows, keep the rest.
        n = len(skus)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        pairs = sp.csr_matrix((counts, cols, indptr), shape=(n, n))
        pairs.has_canonical_format = True
        half_life = meta["half_life_days"]
        baskets = (np.int64 if half_life is None else np.float64)(meta["baskets"])
        return cls(skus, items, pairs, baskets, half_life, meta["latest_at"])


# --- counting --------------------------------------------------------------------------------


def _count(baskets: Baskets, half_life_days: float | None) -> CrossSellModel:
    """A model of ``baskets`` alone."""
    dtype = np.int64 if half_life_days is None else np.float64
    latest = float(baskets.at.max()) if baskets.at is not None and len(baskets.at) else None
    weights = None
    if half_life_days is not None:
        if baskets.at is None:
            raise ValueError("time decay needs each basket's completion time")
        weights = 2.0 ** ((baskets.at - _EPOCH_S) / (half_life_days * _DAY_S))
    total = dtype(len(baskets)) if weights is None else dtype(weights.sum())
    if len(baskets.codes) == 0:  # baskets without items count toward N only
        empty = CrossSellModel.empty(half_life_days)
        return CrossSellModel(empty.skus, empty.items, empty.pairs, total, half_life_days, latest)
    # Sorted, de-duplicated vocabulary of the SKUs these baskets use; codes remapped to it.
    used = np.flatnonzero(np.bincount(baskets.codes, minlength=len(baskets.skus)))
    vocab = np.asarray(baskets.skus)[used]
    order = np.argsort(vocab, kind="stable")
    skus = vocab[order]
    remap = np.empty(len(baskets.skus), dtype=np.int64)
    remap[used[order]] = np.arange(len(used))
    cols = remap[baskets.codes]
    n_rows, n_cols = len(baskets), len(skus)
    x = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.int32), cols, baskets.indptr), shape=(n_rows, n_cols)
    )
    x.sum_duplicates()  # a basket counts an item once however many lines or units hold it
    x.data[:] = 1
    if weights is None:
        xt = x.T.tocsr()
    else:
        xt = sp.csr_matrix(
            (np.repeat(weights, np.diff(x.indptr)), x.indices, x.indptr), shape=x.shape
        ).T.tocsr()
    items = np.asarray(xt.sum(axis=1)).ravel().astype(dtype)
    co = xt @ x
    pairs = _strict_upper(co.tocsr(), dtype)
    pairs.sum_duplicates()  # cheap on canonical input; guarantees the canonical form
    return CrossSellModel(skus, items, pairs, total, half_life_days, latest)


def _exact_ratio_ranks(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Dense ranks (0 = smallest) of ``num / den``, compared exactly: equal ratios share a rank.

    The float quotient is correctly rounded, hence monotone: it never puts two ratios in the
    wrong order and always gives equal ratios the same value, but two different ratios may round
    to the same float. Those groups (rare, and none for integer counts below 2**25) are split
    exactly with :class:`fractions.Fraction`. Exact for counts below 2**53 (floats convert them
    exactly).
    """
    if not len(num):
        return np.zeros(0, dtype=np.int64)
    approx = num.astype(np.float64) / den.astype(np.float64)
    order = np.argsort(approx, kind="stable")
    sorted_approx = approx[order]
    first = np.empty(len(order), dtype=bool)
    first[0] = True
    np.not_equal(sorted_approx[1:], sorted_approx[:-1], out=first[1:])
    group = np.cumsum(first) - 1
    if (
        np.issubdtype(num.dtype, np.integer)
        and np.issubdtype(den.dtype, np.integer)
        and max(int(num.max()), int(den.max())) < 2**25
    ):
        # Two different ratios of such counts differ by more than their floats' rounding.
        ranks = np.empty(len(order), dtype=np.int64)
        ranks[order] = group
        return ranks
    sub = np.zeros(len(order), dtype=np.int64)
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(order))
    for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        members = order[s:e]
        if np.all(num[members] == num[members[0]]) and np.all(den[members] == den[members[0]]):
            continue  # the same counts: trivially the same ratio
        exact = [Fraction(num[m].item()) / Fraction(den[m].item()) for m in members]
        distinct = {value: r for r, value in enumerate(sorted(set(exact)))}
        sub[s:e] = [distinct[value] for value in exact]
    # Dense rank of (group, sub) in sorted position, then back to input position.
    by_pair = np.lexsort((sub, group))
    pair_group, pair_sub = group[by_pair], sub[by_pair]
    changed = np.empty(len(order), dtype=bool)
    changed[0] = False
    changed[1:] = (pair_group[1:] != pair_group[:-1]) | (pair_sub[1:] != pair_sub[:-1])
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order[by_pair]] = np.cumsum(changed)
    return ranks


def _strict_upper(m: sp.csr_matrix, dtype: type) -> sp.csr_matrix:
    # sp.triu goes through COO and back; masking the CSR arrays in place of it is ~5x faster.
    rows = np.repeat(np.arange(m.shape[0], dtype=m.indices.dtype), np.diff(m.indptr))
    keep = m.indices > rows
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=m.shape[0]), out=indptr[1:])
    return sp.csr_matrix((m.data[keep].astype(dtype), m.indices[keep], indptr), shape=m.shape)


def _remapped(pairs: sp.csr_matrix, positions: np.ndarray, n: int) -> sp.csr_matrix:
    # ``positions`` is increasing, so an upper triangle stays one.
    if len(positions) == n and (n == 0 or positions[-1] == n - 1):
        return pairs
    coo = pairs.tocoo()
    return sp.csr_matrix((coo.data, (positions[coo.row], positions[coo.col])), shape=(n, n))


def merge(a: CrossSellModel, b: CrossSellModel) -> CrossSellModel:
    """The model of both models' baskets (same decay setting required)."""
    if a.half_life_days != b.half_life_days:
        raise ValueError("cannot merge models with different half-lives")
    if not len(b.skus) and not b.baskets:
        return a
    if not len(a.skus) and not a.baskets:
        return b
    skus = np.union1d(a.skus, b.skus) if len(b.skus) else a.skus
    n = len(skus)
    pos_a, pos_b = np.searchsorted(skus, a.skus), np.searchsorted(skus, b.skus)
    items = np.zeros(n, dtype=a.items.dtype)
    items[pos_a] += a.items
    items[pos_b] += b.items
    pairs = (_remapped(a.pairs, pos_a, n) + _remapped(b.pairs, pos_b, n)).tocsr()
    pairs.sum_duplicates()
    pairs.sort_indices()
    latest = max((t for t in (a.latest_at, b.latest_at) if t is not None), default=None)
    return CrossSellModel(skus, items, pairs, a.baskets + b.baskets, a.half_life_days, latest)


def fold(model: CrossSellModel, baskets: Baskets) -> CrossSellModel:
    """``model`` plus ``baskets``; new items extend the index."""
    return merge(model, _count(baskets, model.half_life_days))


def build(baskets: Baskets, *, half_life_days: float | None = None) -> CrossSellModel:
    """A model of ``baskets``, with time decay if a half-life is given."""
    return _count(baskets, half_life_days)


def build_all(baskets: Sequence[Baskets], *, half_life_days: float | None = None) -> CrossSellModel:
    model = CrossSellModel.empty(half_life_days)
    for part in baskets:
        model = fold(model, part)
    return model
