"""Settings per stage and per function (shared/platform/settings.py, shared/runtime/stage.py), logs and metrics."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from shared.platform.auth_dev import DEV_ISSUER
from shared.platform.observability import LogFormatter, configure_metrics
from shared.platform.settings import SettingsError, build_settings, get_settings, using_settings
from shared.runtime.config import parse_service
from shared.runtime.stage import StageGuardError, apply_stage, check_stage, function_settings

SERVICE = """
service: retailfn-stages
provider:
  name: ibm
  environment:
    RETAILFN_STAGE: ${sls:stage}
    RETAILFN_CROSSSELL_MIN_COUNT: "3"
stages:
  local:
    environment:
      RETAILFN_RECOMMEND_STOCK_TTL_S: "5"
  prod: {}
functions:
  recommend:
    handler: functions.recommend.main:recommend
    environment:
      RETAILFN_EXPERIMENTS: '{"experiments": []}'
  report_stock:
    handler: functions.report_stock.main:report_stock
    environment:
      RETAILFN_STOCK_BATCH_LIMIT: "2"
"""


def service(stage: str = "local"):  # type: ignore[no-untyped-def]
    return parse_service(SERVICE, stage=stage, env={})


def test_each_function_sees_its_own_environment_and_not_the_others() -> None:
    chosen = function_settings(service(), ["recommend", "report_stock"])

    assert (chosen["recommend"].experiments, chosen["recommend"].stock_batch_limit) == (
        '{"experiments": []}',
        1000,
    )
    assert (chosen["report_stock"].experiments, chosen["report_stock"].stock_batch_limit) == ("", 2)


def test_a_function_sees_the_provider_and_stage_environment_under_its_own() -> None:
    settings = function_settings(service(), ["report_stock"])["report_stock"]

    assert (settings.crosssell_min_count, settings.recommend_stock_ttl_s) == (3, 5.0)


def test_the_stage_environment_replaces_process_settings_read_before_it() -> None:
    assert get_settings().recommend_stock_ttl_s == 1.0  # read (and kept) before the stage

    apply_stage(service())

    assert get_settings().recommend_stock_ttl_s == 5.0


def test_the_stage_is_the_one_the_file_was_read_for() -> None:
    assert apply_stage(service("prod"), allow_embedded=True).stage == "prod"


def test_the_current_functions_settings_are_seen_inside_its_scope_only() -> None:
    report_stock = function_settings(service(), ["report_stock"])["report_stock"]

    with using_settings(report_stock):
        inside = get_settings().stock_batch_limit

    assert (inside, get_settings().stock_batch_limit) == (2, 1000)


def test_a_non_local_stage_on_embedded_adapters_is_refused() -> None:
    with pytest.raises(StageGuardError, match="stage 'prod' would run on the embedded bus"):
        apply_stage(service("prod"))


def test_allow_embedded_in_the_environment_lets_a_non_local_stage_run_on_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAILFN_ALLOW_EMBEDDED", "true")

    check_stage(build_settings({"RETAILFN_STAGE": "prod"}))


def test_the_dev_issuer_is_refused_outside_local_even_when_embedded_is_allowed() -> None:
    settings = build_settings({"RETAILFN_STAGE": "prod", "RETAILFN_JWT_ISSUER": DEV_ISSUER})

    with pytest.raises(StageGuardError, match="trusts the local dev issuer"):
        check_stage(settings, allow_embedded=True)


def test_a_bad_value_names_the_variable_its_source_and_the_rule() -> None:
    with pytest.raises(SettingsError) as caught:
        build_settings({"RETAILFN_STOCK_BATCH_LIMIT": "0"}, source="serverless.yaml, function x")

    assert str(caught.value) == (
        "RETAILFN_STOCK_BATCH_LIMIT=0 (from serverless.yaml, function x)"
        ": Input should be greater than or equal to 1"
    )


def test_a_log_time_is_rfc3339_utc_with_milliseconds() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        LogFormatter("{asctime}{message}", style="{", rename_fields={"asctime": "time"})
    )
    record = logging.makeLogRecord({"msg": "hello", "created": 1767268800.1234})

    handler.emit(record)

    assert json.loads(out.getvalue())["time"] == "2026-01-01T12:00:00.123Z"


def test_metrics_have_no_created_series_unless_asked() -> None:
    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc()

    default = generate_latest(registry).decode()
    configure_metrics(created=True)
    try:
        asked = generate_latest(registry).decode()
    finally:
        configure_metrics(created=False)

    assert not re.search(r"^things_created", default, re.MULTILINE)
    assert re.search(r"^things_created", asked, re.MULTILINE)


def test_an_event_is_delivered_with_its_functions_settings_current() -> None:
    from cloudevents.http import CloudEvent

    from shared.runtime.config import Delivery
    from shared.runtime.invoker import Invoker
    from shared.runtime.loader import LoadedFunction

    seen: list[int] = []
    function = LoadedFunction(
        "report_stock",
        "x:y",
        lambda _ce: seen.append(get_settings().stock_batch_limit),
        "cloudevent",
        False,
    )
    settings = function_settings(service(), ["report_stock"])["report_stock"]
    invoker = Invoker(function, Delivery(), "test", lambda *_: None, settings=settings)

    outcome = invoker.deliver(CloudEvent({"type": "t", "source": "/s", "id": "1"}))

    assert (outcome.status, seen, get_settings().stock_batch_limit) == ("ok", [2], 1000)
