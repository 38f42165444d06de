"""A/B experiments on recommendations: configuration, assignment, and the per-variant report.

Configuration (``RETAILFN_EXPERIMENTS``, from the ``recommendExperiments`` parameter of
``serverless.yaml``; JSON or YAML)::

    {"experiments": [
      {"name": "xsell-ranking", "control": "confidence",
       "variants": [
         {"name": "confidence", "weight": 50, "strategy": "confidence", "limit": 4},
         {"name": "lift", "weight": 50, "strategy": "lift", "limit": 4}]}]}

The recommend API runs the first experiment with ``active: true`` (the default). Assignment is
deterministic: ``sha256("{experiment}:{user}")``, its first 8 bytes as an integer modulo the total
weight, picks the bucket; the same user always sees the same variant of an experiment, different
experiments split users independently, and no state is kept. A request without a user gets the
control variant (the first one unless ``control`` names another), so anonymous traffic never
dilutes a variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.fields import Slug
from events.recommendations import RecommendationClicked, RecommendationShown
from events.sales import OrderCompleted

Strategy = Literal["confidence", "lift", "support"]
"""How complements are ranked: P(b|a), P(b|a)/P(b), or P(a and b)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Model):
    name: Slug
    weight: int = Field(1, ge=0, le=1_000_000)
    strategy: Strategy = "confidence"
    limit: int = Field(5, ge=1, le=50)
    """Items per list (cross-sell and up-sell each); a smaller ``limit`` query caps it."""


class Experiment(_Model):
    name: Slug
    variants: tuple[Variant, ...] = Field(min_length=1, max_length=20)
    control: Slug | None = None
    """The variant for requests without a user; the first variant if not named."""
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must not repeat")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants")
        return self

    @property
    def control_variant(self) -> Variant:
        return self.variant(self.control) if self.control else self.variants[0]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"experiment {self.name} has no variant {name!r}")


DEFAULT_EXPERIMENT = Experiment(name="default", variants=(Variant(name="control"),))
"""What runs when no experiment is configured: one variant, confidence ranking, 5 items."""


class ExperimentsConfig(_Model):
    experiments: tuple[Experiment, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ExperimentsConfig:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError("experiment names must not repeat")
        return self

    def running(self) -> Experiment:
        """The experiment the recommend API runs: the first active one, else the default."""
        return next((e for e in self.experiments if e.active), DEFAULT_EXPERIMENT)

    def get(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)


def bucket_of(experiment: str, user_id: str, buckets: int) -> int:
    """The user's bucket in ``[0, buckets)``: uniform, stable, independent per experiment."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def assign(experiment: Experiment, user_id: str | None) -> Variant:
    """The variant ``user_id`` sees; the control one when there is no user."""
    if not user_id:
        return experiment.control_variant
    total = sum(v.weight for v in experiment.variants)
    point = bucket_of(experiment.name, user_id, total)
    for variant in experiment.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("the weights add up to the total")


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantReport:
    """One variant's figures.

    * ``shown``: answers with recommendations (distinct request ids), ``items_shown``: SKUs in them;
    * ``users``: distinct users among them (anonymous requests count in ``shown`` only);
    * ``clicks``: distinct (request, SKU) clicks; ``clicked``: answers with at least one click;
    * ``click_through_rate``: ``clicked / shown``;
    * ``orders``: distinct orders by a shown user that contain a SKU recommended to that user
      in this variant before the order was completed (within ``window`` if one is given);
      ``order_rate``: ``orders / users``.
    """

    experiment: str
    variant: str
    shown: int
    items_shown: int
    users: int
    clicks: int
    clicked: int
    click_through_rate: float
    orders: int
    order_rate: float


def report(
    shown: Iterable[RecommendationShown],
    clicked: Iterable[RecommendationClicked],
    orders: Iterable[OrderCompleted],
    *,
    experiment: str | None = None,
    window: timedelta | None = None,
    variants: Iterable[tuple[str, str]] = (),
) -> list[VariantReport]:
    """Per (experiment, variant), sorted. ``experiment`` keeps only that one; ``variants`` lists
    pairs to report even without traffic (the configured ones)."""
    requests: dict[tuple[str, str], set[str]] = {}
    items: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
    users: dict[tuple[str, str], set[str]] = {}
    # user -> [(when, variant key, skus)] to attribute orders
    exposures: dict[str, list[tuple[datetime, tuple[str, str], frozenset[str]]]] = {}
    for event in shown:
        if experiment is not None and event.experiment != experiment:
            continue
        key = (event.experiment, event.variant)
        requests.setdefault(key, set()).add(event.request_id)
        items.setdefault(key, set()).update(
            (event.request_id, event.kind, sku) for sku in event.recommended_skus
        )
        if event.user_id:
            users.setdefault(key, set()).add(event.user_id)
            exposures.setdefault(event.user_id, []).append(
                (event.shown_at, key, frozenset(event.recommended_skus))
            )

    clicks: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for click in clicked:
        if experiment is not None and click.experiment != experiment:
            continue
        clicks.setdefault((click.experiment, click.variant), set()).add(
            (click.request_id, click.sku)
        )

    converted: dict[tuple[str, str], set[str]] = {}
    for order in orders:
        if not order.customer_id or order.customer_id not in exposures:
            continue
        bought = {line.sku for line in order.lines}
        for when, key, skus in exposures[order.customer_id]:
            late = window is not None and order.completed_at - when > window
            if when <= order.completed_at and not late and bought & skus:
                converted.setdefault(key, set()).add(order.order_id)

    keys = (
        set(requests)
        | set(clicks)
        | {pair for pair in variants if experiment is None or pair[0] == experiment}
    )
    out = []
    for key in sorted(keys):
        n_shown = len(requests.get(key, ()))
        n_users = len(users.get(key, ()))
        key_clicks = clicks.get(key, set())
        n_clicked = len({request for request, _ in key_clicks})
        n_orders = len(converted.get(key, ()))
        out.append(
            VariantReport(
                experiment=key[0],
                variant=key[1],
                shown=n_shown,
                items_shown=len(items.get(key, ())),
                users=n_users,
                clicks=len(key_clicks),
                clicked=n_clicked,
                click_through_rate=n_clicked / n_shown if n_shown else 0.0,
                orders=n_orders,
                order_rate=n_orders / n_users if n_users else 0.0,
            )
        )
    return out
