"""Language and market rules of the inventory API: which locale to answer in, which currency
to price in. Prices are shown only in currencies the partner priced the product in: never
converted with exchange rates the service does not have.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal

from events.fields import Region

FALLBACK_LOCALE = "en-US"

SUPPORTED_LOCALES: tuple[str, ...] = (
    "en-US",
    "en-CA",
    "es-MX",
    "fr-CA",  # North America
    "en-GB",
    "de-DE",
    "fr-FR",
    "it-IT",
    "es-ES",
    "nl-NL",  # Europe
    "ja-JP",
    "zh-CN",
    "zh-TW",
    "ko-KR",  # Asia
    "en-AU",  # Australia
)
"""The locales the service is offered in; product names may come in any BCP-47 locale."""

REGION_CURRENCY: Mapping[Region, str] = {"na": "USD", "eu": "EUR", "asia": "JPY", "au": "AUD"}
REGIONS: tuple[Region, ...] = ("na", "eu", "asia", "au")

# Chinese written in Traditional script must not fall back to Simplified (and back).
_IMPLIED_SCRIPT = {
    ("zh", "TW"): "Hant",
    ("zh", "HK"): "Hant",
    ("zh", "MO"): "Hant",
    ("zh", "CN"): "Hans",
    ("zh", "SG"): "Hans",
    ("zh", None): "Hans",
}
_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_Q = re.compile(r"^q=(?P<q>0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$", re.IGNORECASE)


class InvalidLocale(ValueError):
    """A ``lang`` that is not a language tag."""


@dataclass(frozen=True)
class _Tag:
    language: str
    script: str | None
    region: str | None


def _parse(tag: str) -> _Tag:
    parts = tag.split("-")
    language = parts[0].lower()
    script = region = None
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and script is None and region is None:
            script = part.title()
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            region = region or part.upper()
    script = script or _IMPLIED_SCRIPT.get((language, region))
    return _Tag(language, script, region)


def _same_language(a: _Tag, b: _Tag) -> bool:
    scripts_agree = a.script is None or b.script is None or a.script == b.script
    return a.language == b.language and scripts_agree


def check_locale(tag: str) -> str:
    """``tag`` if it reads as a language tag (``de``, ``de-DE``, ``zh-Hant-TW``), else raise."""
    if not tag or len(tag) > 35 or tag == "*" or not _RANGE.match(tag):
        raise InvalidLocale(f"{tag!r} is not a language tag like 'de' or 'de-DE'")
    return tag


def parse_accept_language(header: str | None) -> list[str]:
    """The language ranges of an ``Accept-Language`` header, most wanted first.

    Entries with ``q=0`` are refused ranges and dropped; malformed entries are skipped rather
    than failing the request (browsers and proxies send odd headers).
    """
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        fields = [f.strip() for f in item.split(";")]
        tag = fields[0]
        if not tag or not _RANGE.match(tag):
            continue
        q = 1.0
        for param in fields[1:]:
            match = _Q.match(param.replace(" ", ""))
            if match:
                q = float(match["q"])
            elif param:
                q = -1.0  # an unknown or broken parameter: skip the entry
        if q > 0:
            weighted.append((-q, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(
    accept_language: str | None,
    lang: str | None,
    available: AbstractSet[str],
    default: str,
) -> str:
    """The locale of ``available`` to answer in.

    Wishes in order: an explicit ``lang`` first, then the ``Accept-Language`` ranges by q-value.
    For each wish: the exact locale, else the same language in any region (the product's
    default locale or ``en-US`` preferred among several, then the first by name). ``*`` takes the
    product's default. When no wish is met: ``default``, then ``en-US``, then any available.
    """
    by_lower = {loc.lower(): loc for loc in available}
    wishes = ([lang] if lang else []) + parse_accept_language(accept_language)
    preference = [default, FALLBACK_LOCALE, *sorted(available)]
    for wish in wishes:
        if wish == "*":
            break
        exact = by_lower.get(wish.lower())
        if exact is not None:
            return exact
        wanted = _parse(wish)
        for candidate in preference:
            if candidate in available and _same_language(wanted, _parse(candidate)):
                return candidate
    for candidate in (default, FALLBACK_LOCALE):
        if candidate in available:
            return candidate
    return min(available) if available else default


@dataclass(frozen=True)
class LocalizedPrice:
    """A price in one currency; ``amount`` is None when the product has no price in it."""

    currency: str
    amount: str | None

    @property
    def available(self) -> bool:
        return self.amount is not None


def currency_for(region: Region, explicit: str | None = None) -> str:
    """The currency to price in: the one asked for, else the region's."""
    return explicit or REGION_CURRENCY[region]


def price_in(prices: Mapping[str, Decimal], currency: str) -> LocalizedPrice:
    """The product's own price in ``currency``, as a plain decimal string, or none at all."""
    amount = prices.get(currency)
    return LocalizedPrice(currency, None if amount is None else format(amount, "f"))


def pick_text(texts: Mapping[str, str], locale: str, default_locale: str) -> tuple[str, str] | None:
    """(locale, text) in ``locale``, else the same language, else the default locale, else en-US."""
    if not texts:
        return None
    chosen = negotiate(None, locale, set(texts), default_locale)
    return chosen, texts[chosen]
