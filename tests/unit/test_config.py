"""serverless.yaml: parsing, interpolation and the one-line-per-mistake report."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from textwrap import dedent, indent

import pytest

from events.catalog import TOPICS
from shared.runtime.config import (
    DEAD_LETTER_TOPIC,
    ConfigError,
    CosTrigger,
    Delivery,
    ScheduleTrigger,
    ServiceConfig,
    parse_service,
)

VALID = """
service: shop
provider:
  name: ibm
  runtime: python3.11
stages:
  default:
    params:
      retries: 2
      region: eu
  local: {}
  prod:
    params:
      retries: 7
functions:
  report_stock:
    handler: functions.report_stock.main:report_stock
    events:
      - http:
          path: /v1/partners/{partner}/stock
          method: POST
  ingest_stock:
    handler: functions.ingest_stock.main:ingest_stock
    events:
      - kafka:
          topic: inventory.stock-reported
  ingest_stock_file:
    handler: functions.ingest_stock_file.main:ingest_stock_file
    events:
      - cos:
          bucket: partner-drops
          rules:
            - suffix: .csv
  detect_slow_movers:
    handler: functions.detect_slow_movers.main:detect_slow_movers
    events:
      - schedule: cron(0 3 * * *)
"""


def parse(
    text: str,
    *,
    stage: str | None = None,
    env: dict[str, str] | None = None,
) -> ServiceConfig:
    """Parse with an explicit, empty-by-default environment: no test depends on the shell's."""
    return parse_service(dedent(text), stage=stage, env=env or {})


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def one_function(body: str, name: str = "fn") -> str:
    """A minimal service around one function whose YAML body (indented 4) is ``body``."""
    return f"service: shop\nfunctions:\n  {name}:\n" + indent(dedent(body), "    ")


def with_events(*events: str) -> str:
    """A minimal service with one function and the given ``events`` entries (YAML, one line)."""
    lines = "\n".join(f"  - {e}" for e in events)
    return one_function(f"handler: pkg.mod:fn\nevents:\n{lines}\n")


# --- a valid file --------------------------------------------------------------------------


def test_valid_config_parses_every_function_with_its_trigger_kind() -> None:
    service = parse(VALID)

    assert service.service == "shop"
    assert service.stage == "local"
    assert {name: [e.kind for e in fn.events] for name, fn in service.functions.items()} == {
        "report_stock": ["http"],
        "ingest_stock": ["kafka"],
        "ingest_stock_file": ["cos"],
        "detect_slow_movers": ["schedule"],
    }


def test_handler_splits_into_module_and_target() -> None:
    fn = parse(VALID).functions["ingest_stock"]

    assert (fn.module, fn.target) == ("functions.ingest_stock.main", "ingest_stock")


def test_kafka_trigger_defaults_to_ordered_batches_of_100_from_earliest() -> None:
    kafka = parse(VALID).functions["ingest_stock"].triggers("kafka")[0]

    assert (kafka.batch_size, kafka.ordering, kafka.start_position) == (100, "ordered", "earliest")


def test_consumer_group_defaults_to_service_stage_and_function() -> None:
    service = parse(VALID, stage="prod")
    kafka = service.functions["ingest_stock"].triggers("kafka")[0]

    assert service.consumer_group("ingest_stock", kafka) == "shop-prod-ingest_stock"


def test_consumer_group_written_in_the_file_wins() -> None:
    service = parse(
        with_events("kafka: {topic: inventory.stock-reported, consumerGroupId: legacy}")
    )
    kafka = service.functions["fn"].triggers("kafka")[0]

    assert service.consumer_group("fn", kafka) == "legacy"


def test_delivery_defaults_to_three_exponential_retries_then_the_dead_letter_topic() -> None:
    delivery = parse(VALID).functions["ingest_stock"].delivery

    assert delivery == Delivery()
    assert delivery.retry == 3
    assert delivery.backoff_policy == "exponential"
    assert delivery.backoff_delay == timedelta(milliseconds=200)
    assert delivery.backoff_max == timedelta(seconds=30)
    assert delivery.dead_letter == DEAD_LETTER_TOPIC


def test_http_method_is_case_insensitive() -> None:
    http = parse(VALID).functions["report_stock"].triggers("http")[0]

    assert http.method == "post"
    assert http.path_params == ["partner"]


# --- interpolation -------------------------------------------------------------------------

PARAMS = """
service: shop
stages:
  default:
    params:
      retries: 2
      tier: standard
  local: {}
  prod:
    params:
      retries: 7
functions:
  fn:
    handler: pkg.mod:fn
    environment:
      TIER: ${param:tier}
      LABEL: retries-${param:retries}
    delivery:
      retry: ${param:retries}
"""


def test_param_comes_from_default_params_when_the_stage_has_none() -> None:
    service = parse(PARAMS, stage="local")

    assert service.params == {"retries": 2, "tier": "standard"}
    assert service.functions["fn"].environment["LABEL"] == "retries-2"


def test_stage_params_overlay_the_default_params() -> None:
    service = parse(PARAMS, stage="prod")

    assert service.params == {"retries": 7, "tier": "standard"}
    assert service.functions["fn"].environment == {"TIER": "standard", "LABEL": "retries-7"}


def test_whole_value_param_keeps_its_type() -> None:
    retry = parse(PARAMS, stage="prod").functions["fn"].delivery.retry

    assert retry == 7
    assert isinstance(retry, int)


def test_whole_value_number_param_in_an_environment_becomes_a_string() -> None:
    service = parse(PARAMS.replace("TIER: ${param:tier}", "RETRIES: ${param:retries}"))

    assert service.functions["fn"].environment["RETRIES"] == "2"


def test_yaml_scalars_in_an_environment_become_strings() -> None:
    service = parse(
        one_function("handler: pkg.mod:fn\nenvironment: {N: 5, RATIO: 0.5, DEBUG: true}\n")
    )

    assert service.functions["fn"].environment == {"N": "5", "RATIO": "0.5", "DEBUG": "true"}


def test_env_variable_is_read_from_the_given_environment() -> None:
    service = parse(
        one_function("handler: pkg.mod:fn\nenvironment: {URL: '${env:ERP_URL}'}\n"),
        env={"ERP_URL": "https://erp.example"},
    )

    assert service.functions["fn"].environment["URL"] == "https://erp.example"


def test_env_variable_falls_back_to_its_default_when_unset() -> None:
    service = parse(
        one_function("handler: pkg.mod:fn\nenvironment: {LEVEL: '${env:LOG_LEVEL, WARNING}'}\n")
    )

    assert service.functions["fn"].environment["LEVEL"] == "WARNING"


def test_env_variable_that_is_set_wins_over_its_default() -> None:
    service = parse(
        one_function("handler: pkg.mod:fn\nenvironment: {LEVEL: '${env:LOG_LEVEL, WARNING}'}\n"),
        env={"LOG_LEVEL": "DEBUG"},
    )

    assert service.functions["fn"].environment["LEVEL"] == "DEBUG"


def test_sls_stage_and_self_service_are_resolved() -> None:
    service = parse(PARAMS.replace("${param:tier}", "${self:service}-${sls:stage}"), stage="prod")

    assert service.functions["fn"].environment["TIER"] == "shop-prod"


def test_stage_is_taken_from_retailfn_stage_when_not_given() -> None:
    assert parse(PARAMS, env={"RETAILFN_STAGE": "prod"}).stage == "prod"


def test_unset_variable_without_default_is_reported_with_its_path() -> None:
    problems = problems_of(
        one_function("handler: pkg.mod:fn\nenvironment: {URL: '${env:ERP_URL}'}\n")
    )

    assert problems == [
        (
            "functions.fn.environment.URL: ${env:ERP_URL} is not set for stage "
            "'local' and has no default"
        )
    ]


def test_unknown_variable_kind_is_reported_with_the_known_ones() -> None:
    problems = problems_of(
        one_function("handler: pkg.mod:fn\nenvironment: {URL: '${ssm:/erp/url}'}\n")
    )

    assert len(problems) == 1
    assert problems[0].startswith("functions.fn.environment.URL: unknown variable ${ssm:/erp/url}")
    assert "${env:X}" in problems[0] and "${param:x}" in problems[0]


def test_a_stage_the_file_does_not_name_gets_the_default_params() -> None:
    service = parse(PARAMS, stage="staging")

    assert (service.stage, service.params) == ("staging", {"retries": 2, "tier": "standard"})


# --- mistakes, one line each with its path -------------------------------------------------


def test_misspelled_topic_is_reported_with_its_path_and_the_known_topics() -> None:
    problems = problems_of(VALID.replace("topic: inventory.stock-reported", "topic: stok.reported"))

    assert len(problems) == 1
    prefix = "functions.ingest_stock.events[0].kafka.topic: unknown topic 'stok.reported'; known: "
    assert problems[0].startswith(prefix)
    assert problems[0].removeprefix(prefix).split(", ") == sorted(TOPICS)


def test_unknown_bucket_is_reported_with_its_path() -> None:
    problems = problems_of(VALID.replace("bucket: partner-drops", "bucket: partner-drop"))

    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.ingest_stock_file.events[0].cos.bucket: unknown bucket 'partner-drop'; known: "
    )
    assert "partner-drops" in problems[0]


def test_unknown_dead_letter_topic_is_reported() -> None:
    problems = problems_of(one_function("handler: pkg.mod:fn\ndelivery: {deadLetter: dlq}\n"))

    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.fn.delivery.deadLetter: unknown dead-letter topic 'dlq'; known: "
    )


def test_misspelled_field_is_reported_as_unknown_with_its_path() -> None:
    problems = problems_of(with_events("kafak: {topic: inventory.stock-reported}"))

    assert problems == ["functions.fn.events[0].kafak: unknown field"]


def test_event_with_two_kinds_is_rejected() -> None:
    problems = problems_of(
        with_events("{kafka: {topic: inventory.stock-reported}, http: {path: /stock}}")
    )

    assert problems == [
        "functions.fn.events[0]: each event needs exactly one of: http, kafka, cos, schedule"
    ]


def test_event_with_no_kind_is_rejected() -> None:
    problems = problems_of(with_events("{}"))

    assert problems == [
        "functions.fn.events[0]: each event needs exactly one of: http, kafka, cos, schedule"
    ]


@pytest.mark.parametrize("handler", ["functions.ingest_stock.main", "main:", "a b:c", "pkg.:fn"])
def test_handler_that_is_not_module_colon_function_is_rejected(handler: str) -> None:
    problems = problems_of(one_function(f"handler: '{handler}'\n"))

    assert problems == [
        f"functions.fn.handler: handler {handler!r} must be 'package.module:function'"
    ]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("rate(0 minutes)", "rate must be at least 1"),
        ("cron(61 * * * *)", "invalid cron expression '61 * * * *'"),
        ("every 5 min", "schedule 'every 5 min' must be 'rate(<n> <unit>)' or 'cron(<5 fields>)'"),
    ],
)
def test_bad_schedule_is_rejected_with_the_reason(expression: str, reason: str) -> None:
    problems = problems_of(with_events(f"schedule: '{expression}'"))

    assert len(problems) == 1
    assert problems[0].startswith("functions.fn.events[0].schedule")
    assert reason in problems[0]


def test_same_http_route_on_two_functions_is_rejected() -> None:
    problems = problems_of("""
        service: shop
        functions:
          first:
            handler: pkg.mod:first
            events:
              - http: {path: '/v1/items/{sku}', method: get}
          second:
            handler: pkg.mod:second
            events:
              - http: {path: '/v1/items/{id}', method: GET}
    """)

    assert problems == ["functions.second: GET /v1/items/{id} is already served by first"]


def test_same_path_with_another_method_is_a_different_route() -> None:
    service = parse("""
        service: shop
        functions:
          read:
            handler: pkg.mod:read
            events:
              - http: {path: '/v1/items/{sku}', method: get}
          write:
            handler: pkg.mod:write
            events:
              - http: {path: '/v1/items/{sku}', method: put}
    """)

    assert set(service.functions) == {"read", "write"}


@pytest.mark.parametrize("path", ["v1/items", "/v1/items/{SKU}", "/v1/items?x=1", "/v1/it ems"])
def test_bad_http_path_is_rejected(path: str) -> None:
    problems = problems_of(with_events(f"http: {{path: '{path}'}}"))

    assert problems == [
        (
            f"functions.fn.events[0].http.path: path {path!r} must start with '/' "
            "and use segments or {param} placeholders"
        )
    ]


def test_invalid_yaml_is_one_problem() -> None:
    problems = problems_of("service: shop\nfunctions: [\n")

    assert len(problems) == 1
    assert problems[0].startswith("not valid YAML: ")


def test_function_name_that_is_not_snake_case_is_reported_under_its_name() -> None:
    problems = problems_of("service: shop\nfunctions:\n  Report-Stock:\n    handler: pkg.mod:fn\n")

    assert problems == ["functions.Report-Stock: function name 'Report-Stock' must be snake_case"]


def test_file_that_is_not_a_mapping_is_rejected() -> None:
    assert problems_of("- service\n- functions\n") == [
        "the file must be a mapping with service, provider and functions"
    ]


def test_several_mistakes_are_reported_together() -> None:
    problems = problems_of("""
        service: shop
        functions:
          ingest_stock:
            handler: functions.ingest_stock.main
            events:
              - kafka: {topic: stok.reported}
              - schedule: rate(0 minutes)
          Bad-Name:
            handler: pkg.mod:fn
    """)

    assert sorted(p.split(": ", 1)[0] for p in problems) == [
        "functions.Bad-Name",
        "functions.ingest_stock.events[0].kafka.topic",
        "functions.ingest_stock.events[1].schedule.rate",
        "functions.ingest_stock.handler",
    ]


def test_error_message_names_the_source_and_counts_the_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_service(
            "service: shop\nfunctions:\n  fn:\n    handler: x\n    timeout: soon\n",
            env={},
            source="deploy/serverless.yaml",
        )

    assert caught.value.source == "deploy/serverless.yaml"
    assert str(caught.value).startswith("deploy/serverless.yaml has 2 problems:")


# --- delivery ------------------------------------------------------------------------------


def test_linear_backoff_grows_by_the_delay_each_attempt() -> None:
    delivery = Delivery(
        backoffPolicy="linear",
        backoffDelay=timedelta(seconds=0.5),
        backoffMax=timedelta(seconds=10),
    )

    assert [delivery.backoff(n) for n in (1, 2, 3, 4)] == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_exponential_backoff_doubles_and_is_capped_at_backoff_max() -> None:
    delivery = Delivery(
        backoffPolicy="exponential",
        backoffDelay=timedelta(seconds=0.5),
        backoffMax=timedelta(seconds=3),
    )

    assert [delivery.backoff(n) for n in (1, 2, 3, 4, 5, 10)] == pytest.approx(
        [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    )


def test_linear_backoff_is_capped_at_backoff_max_too() -> None:
    delivery = Delivery(
        backoffPolicy="linear", backoffDelay=timedelta(seconds=2), backoffMax=timedelta(seconds=5)
    )

    assert delivery.backoff(10) == 5.0


def test_durations_accept_iso_8601_and_plain_seconds() -> None:
    fn = parse(
        one_function(
            "handler: pkg.mod:fn\ntimeout: PT2M\ndelivery: {backoffDelay: PT0.5S, backoffMax: 12}\n"
        )
    ).functions["fn"]

    assert fn.timeout == timedelta(minutes=2)
    assert fn.delivery.backoff_delay == timedelta(milliseconds=500)
    assert fn.delivery.backoff_max == timedelta(seconds=12)


def test_negative_retry_count_is_rejected() -> None:
    problems = problems_of(one_function("handler: pkg.mod:fn\ndelivery: {retry: -1}\n"))

    assert len(problems) == 1
    assert problems[0].startswith("functions.fn.delivery.retry: ")


# --- triggers ------------------------------------------------------------------------------


def test_cos_trigger_matches_a_written_key_with_its_prefix_and_suffix() -> None:
    cos = CosTrigger(bucket="partner-drops", rules=[{"prefix": "drops/"}, {"suffix": ".csv"}])

    assert cos.matches("drops/acme/2026-11-27.csv", "write")
    assert not cos.matches("other/acme/2026-11-27.csv", "write")
    assert not cos.matches("drops/acme/2026-11-27.json", "write")


def test_cos_trigger_on_writes_ignores_deletes() -> None:
    cos = CosTrigger(bucket="partner-drops")

    assert cos.matches("any.csv", "write")
    assert not cos.matches("any.csv", "delete")


def test_cos_trigger_on_all_matches_writes_and_deletes() -> None:
    cos = CosTrigger(bucket="partner-drops", event="all")

    assert cos.matches("any.csv", "write") and cos.matches("any.csv", "delete")


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(1 second)", timedelta(seconds=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(2 hours)", timedelta(hours=2)),
        ("rate(1 day)", timedelta(days=1)),
    ],
)
def test_rate_schedule_has_an_interval_and_no_cron(expression: str, interval: timedelta) -> None:
    schedule = ScheduleTrigger(rate=expression)

    assert (schedule.interval, schedule.cron) == (interval, None)


def test_cron_schedule_has_its_five_fields_and_no_interval() -> None:
    schedule = ScheduleTrigger(rate="cron(*/5 * * * *)")

    assert (schedule.cron, schedule.interval) == ("*/5 * * * *", None)


def test_schedule_shorthand_and_long_form_are_the_same_trigger() -> None:
    short = parse(with_events("schedule: rate(5 minutes)")).functions["fn"]
    long = parse(with_events("schedule: {rate: rate(5 minutes), enabled: false}")).functions["fn"]

    assert short.triggers("schedule")[0].expression == long.triggers("schedule")[0].expression
    assert short.triggers("schedule")[0].enabled and not long.triggers("schedule")[0].enabled


# --- the Serverless dialect: storage events -------------------------------------------------


def cos_event(body: str) -> str:
    """A service whose one function has one ``cos`` event with the given YAML flow body."""
    return with_events(f"cos: {{bucket: partner-drops, {body}}}")


def test_cos_rules_in_serverless_shape_give_the_prefix_and_the_suffix() -> None:
    cos = (
        parse(cos_event("rules: [{prefix: drops/}, {suffix: .csv}]"))
        .functions["fn"]
        .triggers("cos")[0]
    )

    assert (cos.prefix, cos.suffixes) == ("drops/", (".csv",))


def test_cos_event_with_several_suffixes_matches_a_key_ending_in_any_of_them() -> None:
    cos = (
        parse(cos_event("rules: [{suffix: .csv}, {suffix: .ndjson}]"))
        .functions["fn"]
        .triggers("cos")[0]
    )

    assert cos.matches("acme/1.csv", "write") and cos.matches("acme/1.ndjson", "write")
    assert not cos.matches("acme/1.json", "write")


@pytest.mark.parametrize(
    ("written", "event"),
    [
        ("s3:ObjectCreated:*", "write"),
        ("s3:ObjectRemoved:*", "delete"),
        ("write", "write"),
        ("delete", "delete"),
        ("all", "all"),
    ],
)
def test_serverless_s3_event_types_are_cos_writes_and_deletes(written: str, event: str) -> None:
    cos = parse(cos_event(f"event: '{written}'")).functions["fn"].triggers("cos")[0]

    assert cos.event == event


def test_an_s3_event_type_cos_cannot_notify_is_refused_naming_the_supported_ones() -> None:
    problems = problems_of(cos_event("event: 's3:ObjectCreated:Put'"))

    assert problems == [
        (
            "functions.fn.events[0].cos.event: event 's3:ObjectCreated:Put' must be "
            "one of: s3:ObjectCreated:*, s3:ObjectRemoved:*, write, delete, all (COS "
            "notifies writes and deletes, not their kinds)"
        )
    ]


@pytest.mark.parametrize("rule", ["{}", "{prefix: a/, suffix: .csv}"])
def test_a_rule_that_is_not_one_prefix_or_one_suffix_is_refused(rule: str) -> None:
    problems = problems_of(cos_event(f"rules: [{rule}]"))

    assert problems == [
        "functions.fn.events[0].cos.rules[0]: a rule is either {prefix: ...} or {suffix: ...}"
    ]


def test_two_prefixes_in_one_cos_event_are_refused() -> None:
    problems = problems_of(cos_event("rules: [{prefix: a/}, {prefix: b/}]"))

    assert problems == [
        (
            "functions.fn.events[0].cos.rules: one prefix per event (got 'a/', "
            "'b/'); write one cos event per prefix"
        )
    ]


def test_a_suffix_that_another_suffix_already_matches_is_refused() -> None:
    problems = problems_of(cos_event("rules: [{suffix: .gz}, {suffix: .csv.gz}]"))

    assert problems == [
        "functions.fn.events[0].cos.rules: suffix '.csv.gz' is already matched by suffix '.gz'"
    ]


def test_a_suffix_given_twice_is_refused() -> None:
    problems = problems_of(cos_event("rules: [{suffix: .csv}, {suffix: .csv}]"))

    assert problems == ["functions.fn.events[0].cos.rules: suffix '.csv' is given twice"]


@pytest.mark.parametrize("field", ["prefix", "suffix"])
def test_a_flat_prefix_or_suffix_is_refused_pointing_at_rules(field: str) -> None:
    problems = problems_of(cos_event(f"{field}: x"))

    assert problems == [
        (
            f"functions.fn.events[0].cos.{field}: unknown field; write rules: "
            f"[{{{field}: ...}}], as in Serverless's s3 event"
        )
    ]


def test_an_s3_event_is_refused_pointing_at_cos() -> None:
    problems = problems_of(with_events("s3: {bucket: partner-drops}"))

    assert problems == [
        (
            "functions.fn.events[0].s3: unknown field; storage events are on IBM "
            "COS: write cos: with the same bucket, event and rules"
        )
    ]


def test_existing_true_is_accepted_since_every_bucket_exists() -> None:
    assert parse(cos_event("existing: true")).functions["fn"].triggers("cos")[0].existing


def test_existing_false_is_refused() -> None:
    problems = problems_of(cos_event("existing: false"))

    assert problems == [
        (
            "functions.fn.events[0].cos.existing: existing: false asks for a bucket "
            "made for this event; buckets are defined in events/catalog.py and "
            "created by `retailfn deploy`, so remove existing (or write existing: "
            "true)"
        )
    ]


# --- the Serverless dialect: Kafka events ---------------------------------------------------


def kafka_event(body: str) -> str:
    return with_events(f"kafka: {{topic: inventory.stock-reported, {body}}}")


@pytest.mark.parametrize(
    ("written", "position"), [("TRIM_HORIZON", "earliest"), ("LATEST", "latest")]
)
def test_serverless_starting_positions_are_kafka_offsets(written: str, position: str) -> None:
    kafka = parse(kafka_event(f"startingPosition: {written}")).functions["fn"].triggers("kafka")[0]

    assert kafka.start_position == position


def test_kafka_event_fields_have_serverless_names() -> None:
    kafka = (
        parse(kafka_event("batchSize: 7, consumerGroupId: g")).functions["fn"].triggers("kafka")[0]
    )

    assert (kafka.batch_size, kafka.consumer_group) == (7, "g")


@pytest.mark.parametrize(
    ("written", "instead"), [("earliest", "TRIM_HORIZON"), ("latest", "LATEST")]
)
def test_a_kafka_offset_name_as_starting_position_is_refused_with_serverless_name(
    written: str, instead: str
) -> None:
    problems = problems_of(kafka_event(f"startingPosition: {written}"))

    assert problems == [
        (
            f"functions.fn.events[0].kafka.startingPosition: startingPosition "
            f"'{written}' is written {instead} (Serverless's name)"
        )
    ]


def test_a_starting_position_that_is_not_a_name_is_refused() -> None:
    problems = problems_of(kafka_event("startingPosition: [LATEST]"))

    assert problems == [
        (
            "functions.fn.events[0].kafka.startingPosition: startingPosition "
            "['LATEST'] must be TRIM_HORIZON or LATEST"
        )
    ]


def test_starting_position_at_timestamp_is_refused() -> None:
    problems = problems_of(kafka_event("startingPosition: AT_TIMESTAMP"))

    assert problems == [
        (
            "functions.fn.events[0].kafka.startingPosition: startingPosition "
            "AT_TIMESTAMP is not supported (a Code Engine Kafka subscription cannot "
            "start at a time); write TRIM_HORIZON or LATEST"
        )
    ]


@pytest.mark.parametrize(
    ("field", "instead"),
    [
        ("consumerGroup: g", "write consumerGroupId (Serverless's name)"),
        (
            "startPosition: earliest",
            "write startingPosition: TRIM_HORIZON or LATEST (Serverless's names)",
        ),
        (
            "bootstrapServers: [b:9092]",
            "the brokers are the stage's RETAILFN_KAFKA_BOOTSTRAP_SERVERS, not part of the event",
        ),
        (
            "accessConfigurations: {saslPlainAuth: x}",
            "the credentials are the stage's RETAILFN_KAFKA_* settings, not part of the event",
        ),
    ],
)
def test_a_kafka_field_that_means_nothing_here_says_what_to_write(field: str, instead: str) -> None:
    problems = problems_of(kafka_event(field))

    assert problems == [
        f"functions.fn.events[0].kafka.{field.split(':')[0]}: unknown field; {instead}"
    ]


# --- the Serverless dialect: schedules ------------------------------------------------------


def test_a_six_field_aws_cron_is_refused_naming_the_five_field_form() -> None:
    problems = problems_of(with_events("schedule: 'cron(0 12 * * ? *)'"))

    assert problems == [
        (
            "functions.fn.events[0].schedule.rate: cron(0 12 * * ? *) has 6 fields "
            "(AWS's form, with a year); write the 5-field form cron(0 12 * * *) "
            "(minute hour day-of-month month day-of-week, UTC)"
        )
    ]


def test_a_six_field_cron_with_week_days_and_a_year_says_what_differs() -> None:
    problems = problems_of(with_events("schedule: 'cron(0 8 ? * 2-6 2027)'"))

    assert problems == [
        (
            "functions.fn.events[0].schedule.rate: cron(0 8 ? * 2-6 2027) has 6 "
            "fields (AWS's form, with a year); write the 5-field form "
            "cron(0 8 * * 2-6) (minute hour day-of-month month day-of-week, UTC); "
            "AWS numbers the days of the week 1-7 from Sunday, the 5-field form 0-6; "
            "the year '2027' has no 5-field equivalent"
        )
    ]


def test_a_serverless_v3_rate_list_of_one_expression_is_that_expression() -> None:
    schedule = (
        parse(with_events("schedule: {rate: [rate(5 minutes)]}"))
        .functions["fn"]
        .triggers("schedule")[0]
    )

    assert schedule.interval == timedelta(minutes=5)


def test_a_rate_list_of_two_expressions_is_refused() -> None:
    problems = problems_of(with_events("schedule: {rate: [rate(5 minutes), rate(1 hour)]}"))

    assert problems == [
        (
            "functions.fn.events[0].schedule.rate: rate has 2 expressions; write one "
            "schedule event per expression"
        )
    ]


# --- the Serverless dialect: stages, parameters and variables -------------------------------

OPT_STAGE = one_function("handler: pkg.mod:fn\nenvironment: {STAGE: '${opt:stage}'}\n")


def test_opt_stage_is_the_stage_asked_for() -> None:
    assert parse(OPT_STAGE, stage="prod").functions["fn"].environment["STAGE"] == "prod"


def test_opt_stage_is_the_retailfn_stage_a_deployed_app_gets() -> None:
    service = parse(OPT_STAGE, env={"RETAILFN_STAGE": "prod"})

    assert service.functions["fn"].environment["STAGE"] == "prod"


def test_opt_stage_not_given_and_without_default_is_reported() -> None:
    problems = problems_of(OPT_STAGE)

    assert problems == [
        (
            "functions.fn.environment.STAGE: ${opt:stage} is not set: no --stage (or "
            "RETAILFN_STAGE) was given and it has no default; write "
            "${opt:stage, <stage>} or ${sls:stage}"
        )
    ]


def test_provider_stage_from_opt_stage_with_a_default_decides_the_stage() -> None:
    text = "provider: {stage: \"${opt:stage, 'dev'}\"}\n" + OPT_STAGE.replace(
        "${opt:stage}", "${sls:stage}"
    )

    assert [parse(text, stage=s).stage for s in (None, "prod")] == ["dev", "prod"]


def test_provider_stage_made_of_sls_stage_is_refused() -> None:
    problems = problems_of("provider: {stage: '${sls:stage}'}\n" + OPT_STAGE)

    assert problems == [
        "provider.stage: ${sls:stage} is the stage this value decides; write ${opt:stage, <stage>}"
    ]


SELF = """
service: shop
provider: {stage: local}
custom:
  batch: 250
  owner: inventory-team
  label: ${self:custom.owner}-${self:provider.stage}
functions:
  fn:
    handler: pkg.mod:fn
    environment: {OWNER: '${self:custom.label}'}
    events:
      - kafka: {topic: inventory.stock-reported, batchSize: '${self:custom.batch}'}
"""


def test_self_reads_a_path_of_the_file_resolved_in_turn() -> None:
    service = parse(SELF)

    assert service.functions["fn"].environment["OWNER"] == "inventory-team-local"


def test_a_whole_value_self_reference_keeps_its_type() -> None:
    kafka = parse(SELF).functions["fn"].triggers("kafka")[0]

    assert kafka.batch_size == 250


def test_a_self_reference_to_a_missing_path_is_reported() -> None:
    problems = problems_of(SELF.replace("${self:custom.owner}", "${self:custom.team}"))

    assert problems == ["custom.label: ${self:custom.team} is not set: the file has no custom.team"]


def test_a_self_reference_that_comes_back_to_itself_is_reported() -> None:
    problems = problems_of(SELF.replace("owner: inventory-team", "owner: ${self:custom.label}"))

    assert sorted(problems) == [
        "custom.label: ${self:custom.owner} refers back to itself",
        "custom.owner: ${self:custom.label} refers back to itself",
    ]


def test_a_mapping_cannot_be_part_of_a_string() -> None:
    problems = problems_of(SELF.replace("${self:custom.label}'", "x-${self:custom}'"))

    assert problems == [
        (
            "functions.fn.environment.OWNER: ${self:custom} is a mapping; it can "
            "only be a whole value, not part of a string"
        )
    ]


@pytest.mark.parametrize(
    "variable",
    ["${file(./config.json):url}", "${ssm:/erp/url}", "${sls:instanceId}", "${opt:region}"],
)
def test_a_variable_source_we_do_not_resolve_is_refused_not_kept_as_text(variable: str) -> None:
    problems = problems_of(
        one_function(f"handler: pkg.mod:fn\nenvironment: {{URL: '{variable}'}}\n")
    )

    assert problems == [
        (
            f"functions.fn.environment.URL: unknown variable {variable}; known: "
            "${env:X}, ${param:x}, ${opt:stage}, ${sls:stage}, ${self:path.in.file}"
        )
    ]


V3_PARAMS = """
service: shop
params:
  default: {retries: 2, tier: standard}
  prod: {retries: 7}
functions:
  fn:
    handler: pkg.mod:fn
    environment: {TIER: '${param:tier}'}
    delivery: {retry: '${param:retries}'}
"""


@pytest.mark.parametrize(("stage", "retry"), [("prod", 7), ("local", 2), ("staging", 2)])
def test_serverless_v3_top_level_params_overlay_default_per_stage(stage: str, retry: int) -> None:
    service = parse(V3_PARAMS, stage=stage)

    assert service.functions["fn"].delivery.retry == retry
    assert service.params["tier"] == "standard"


def test_v3_params_and_v4_stage_params_in_one_file_are_refused() -> None:
    problems = problems_of(V3_PARAMS + "stages:\n  prod:\n    params: {retries: 9}\n")

    assert problems == [
        (
            "params: parameters are written both here (Serverless v3) and under "
            "stages.<stage>.params (v4: prod); keep one of the two"
        )
    ]


def test_v3_params_of_a_stage_that_are_not_a_mapping_are_refused() -> None:
    problems = problems_of(V3_PARAMS.replace("prod: {retries: 7}", "prod: 7"))

    assert problems == ["params.prod: must map parameter names to values"]


def test_a_top_level_stage_is_refused_pointing_at_provider_stage() -> None:
    problems = problems_of("stage: prod\n" + one_function("handler: pkg.mod:fn\n"))

    assert problems == ["stage: unknown field; write provider.stage (or pass --stage)"]


# --- the README's dialect section -----------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_dialect_examples() -> list[tuple[str, str]]:
    """(Serverless's, ours) for each side-by-side table of README's serverless.yaml section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## serverless.yaml dialect\n", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"<table>.*?</table>", section, flags=re.DOTALL)
    pairs = []
    for table in tables:
        blocks = re.findall(r"```yaml\n(.*?)```", table, flags=re.DOTALL)
        assert len(blocks) == 2, table
        pairs.append((blocks[0], blocks[1]))
    return pairs


def test_the_readme_shows_each_construct_beside_serverless() -> None:
    assert len(readme_dialect_examples()) == 4


@pytest.mark.parametrize("stage", [None, "prod", "staging"])
@pytest.mark.parametrize("index", range(4))
def test_the_readmes_retailfn_examples_load(index: int, stage: str | None) -> None:
    ours = readme_dialect_examples()[index][1]

    assert parse_service(ours, stage=stage, env={}).functions


def test_the_readmes_params_example_gives_prod_its_own_and_other_stages_default() -> None:
    ours = readme_dialect_examples()[3][1]

    assert [
        parse_service(ours, stage=s, env={}).functions["report_stock"].environment["BATCH_LIMIT"]
        for s in ("prod", "staging")
    ] == ["5000", "1000"]


def test_the_readmes_serverless_s3_example_is_refused_pointing_at_cos() -> None:
    theirs = readme_dialect_examples()[0][0]

    with pytest.raises(ConfigError) as caught:
        parse_service(theirs, env={})

    assert (
        "functions.ingest_stock_file.events[0].s3: unknown field; storage events are on IBM "
        "COS: write cos: with the same bucket, event and rules" in caught.value.problems
    )


# --- deploy: how an event function runs where ops deploy it -------------------------------


def deploying(deploy: str, event: str) -> str:
    return one_function(f"handler: pkg.mod:fn\ndeploy: {deploy}\nevents:\n  - {event}\n")


def test_a_subscription_for_an_ordered_kafka_trigger_is_refused_naming_worker() -> None:
    problems = problems_of(deploying("subscription", "kafka: {topic: inventory.stock-reported}"))

    assert problems == [
        (
            "functions.fn.deploy: a subscription keeps no per-key order, but "
            "events[0].kafka has ordering: ordered (the default); use deploy: "
            "worker, or ordering: unordered"
        )
    ]


def test_a_subscription_for_a_batch_kafka_trigger_is_refused_naming_worker() -> None:
    problems = problems_of(
        deploying("subscription", "kafka: {topic: '*', mode: batch, ordering: unordered}")
    )

    assert problems == [
        (
            "functions.fn.deploy: subscription delivers one event at a time, but "
            "events[0].kafka has mode: batch; use deploy: worker"
        )
    ]


def test_deploy_on_an_http_function_is_refused() -> None:
    problems = problems_of(deploying("worker", "http: {path: /stock}"))

    assert problems == [
        (
            "functions.fn.deploy: deploy is for event functions (kafka, cos, "
            "schedule); an HTTP function is served by its own app"
        )
    ]


def test_an_unknown_deploy_mode_is_reported_with_the_known_ones() -> None:
    problems = problems_of(deploying("lambda", "cos: {bucket: partner-drops}"))

    assert len(problems) == 1
    assert problems[0].startswith("functions.fn.deploy: ")
    assert "'subscription'" in problems[0] and "'worker'" in problems[0]


def test_an_unordered_kafka_trigger_may_run_behind_a_subscription() -> None:
    service = parse(
        deploying("subscription", "kafka: {topic: inventory.stock-reported, ordering: unordered}")
    )

    assert service.functions["fn"].deployment == "subscription"


def test_without_deploy_a_function_runs_as_its_triggers_need() -> None:
    functions = parse(VALID).functions

    assert {name: fn.deployment for name, fn in functions.items()} == {
        "report_stock": None,  # HTTP: its own app
        "ingest_stock": "worker",  # ordered by default
        "ingest_stock_file": "subscription",
        "detect_slow_movers": "subscription",
    }
