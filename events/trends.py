"""Social trend signals: regional preferences for cuisines, chefs, ingredients and dishes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from events.fields import CountryCode, Locale, Payload, Region, Slug, Text, UtcDatetime


class TrendObserved(Payload):
    """Social listening saw a term trend in a region."""

    ce_type = "com.retailfn.trends.trend-observed.v1"

    region: Region
    country: CountryCode | None = None
    metro: Text | None = None
    """A metro area, where the signal is local (the 'gourmet' trend is a big-city one)."""
    topic_kind: Literal["cuisine", "chef", "ingredient", "dish"]
    term: Text
    locale: Locale
    score: float = Field(ge=0, le=1)
    """Normalized strength of the signal, 0 (none) to 1 (strongest seen)."""
    mentions: int | None = Field(None, ge=0)
    source: Slug
    """The social network or feed, e.g. ``instagram``."""
    observed_at: UtcDatetime
