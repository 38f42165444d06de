from __future__ import annotations

from decimal import Decimal

import pytest

from shared.kernel.localization import (
    InvalidLocale,
    check_locale,
    currency_for,
    negotiate,
    parse_accept_language,
    price_in,
)

NAMES = {"en-US", "de-DE", "ja-JP", "zh-CN", "fr-FR"}


def test_an_explicit_lang_wins_over_accept_language() -> None:
    assert negotiate("de-DE,de;q=0.9", "ja-JP", NAMES, "en-US") == "ja-JP"


def test_accept_language_is_taken_by_q_value_not_by_position() -> None:
    assert negotiate("en-US;q=0.5, fr-FR;q=0.9, de-DE;q=0.7", None, NAMES, "en-US") == "fr-FR"


def test_a_refused_language_with_q_zero_is_never_chosen() -> None:
    assert negotiate("de-DE;q=0, fr-FR;q=0.1", None, NAMES, "en-US") == "fr-FR"


def test_the_same_language_in_another_region_is_the_fallback() -> None:
    assert negotiate("de-AT", None, NAMES, "en-US") == "de-DE"
    assert negotiate(None, "de", NAMES, "en-US") == "de-DE"


def test_matching_ignores_case() -> None:
    assert negotiate("JA-jp", None, NAMES, "en-US") == "ja-JP"


def test_traditional_chinese_does_not_fall_back_to_simplified() -> None:
    assert negotiate("zh-TW", None, NAMES, "de-DE") == "de-DE"


def test_an_unmet_wish_falls_back_to_the_products_default_locale() -> None:
    assert negotiate("ko-KR", None, NAMES, "de-DE") == "de-DE"


def test_en_us_is_the_last_resort_when_the_default_is_not_named() -> None:
    assert negotiate("ko-KR", None, {"en-US", "ja-JP"}, "fr-FR") == "en-US"


def test_a_wildcard_takes_the_products_default() -> None:
    assert negotiate("ko-KR, *;q=0.5", None, NAMES, "ja-JP") == "ja-JP"


def test_no_preference_at_all_is_the_products_default() -> None:
    assert negotiate(None, None, NAMES, "zh-CN") == "zh-CN"


def test_a_malformed_accept_language_entry_is_skipped() -> None:
    assert parse_accept_language("de-DE;q=abc, ;;, fr;q=0.8") == ["fr"]


def test_a_lang_that_is_not_a_language_tag_is_refused() -> None:
    with pytest.raises(InvalidLocale):
        check_locale("de_DE; drop")


def test_each_region_prices_in_its_own_currency() -> None:
    assert [currency_for(r) for r in ("na", "eu", "asia", "au")] == ["USD", "EUR", "JPY", "AUD"]


def test_an_explicit_currency_overrides_the_regions() -> None:
    assert currency_for("eu", "CHF") == "CHF"


def test_a_price_is_shown_only_in_a_currency_the_product_is_priced_in() -> None:
    prices = {"EUR": Decimal("36.95"), "JPY": Decimal(5900)}

    assert price_in(prices, "EUR").amount == "36.95"
    missing = price_in(prices, "AUD")
    assert (missing.amount, missing.available) == (None, False)
