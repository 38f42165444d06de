"""Constrained field types shared by every payload model, and the payload base class."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from events.codes import COUNTRIES, CURRENCIES


class Payload(BaseModel):
    """Base of every event payload: immutable, no unknown fields, one CloudEvents type each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ce_type: ClassVar[str]
    """The CloudEvents ``type`` the payload travels as: ``com.retailfn.<area>.<event>.v1``."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC. pydantic only turns a
        # ValueError into a field error; anything else would escape as a 500.
        raise ValueError(
            "the timestamp is outside the years 1 to 9999 once converted to UTC"
        ) from None


def _check_currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"{value!r} is not an active ISO 4217 currency code")
    return value


def _check_country(value: str) -> str:
    if value not in COUNTRIES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


# language (ISO 639), optional script (ISO 15924), optional region (ISO 3166 or UN M.49).
_LOCALE = re.compile(
    r"^(?P<lang>[a-z]{2,3})(-(?P<script>[A-Z][a-z]{3}))?(-(?P<region>[A-Z]{2}|\d{3}))?$"
)


def _check_locale(value: str) -> str:
    match = _LOCALE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a BCP-47 locale like 'en', 'en-US' or 'zh-Hant-TW'")
    region = match["region"]
    if region and region.isalpha() and region not in COUNTRIES:
        raise ValueError(f"{value!r} names an unknown region {region!r}")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timestamp with an offset, normalized to UTC. Naive datetimes are rejected: a partner's local
clock without a zone cannot be ordered against anyone else's; so is one that falls outside the
years 1 to 9999 in UTC (``0001-01-01T00:00:00+14:00``)."""

CurrencyCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_check_currency)
]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_check_country)
]
Locale = Annotated[
    str, StringConstraints(min_length=2, max_length=16), AfterValidator(_check_locale)
]

Region = Literal["na", "eu", "asia", "au"]
"""The markets the service is deployed for: North America, Europe, Asia, Australia."""

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{2,39}$")]
"""A catalog SKU: upper-case letters, digits and dashes, 3 to 40 characters."""

PartnerSku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
"""A partner's own SKU: partners' systems differ, so this is looser than a catalog SKU."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
"""An id of a partner, location, store, order, member, coupon, campaign or request. No colons:
topic keys join ids with ':'."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=4)]
Quantity = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3)]
PositiveQuantity = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=3)]
