"""`retailfn validate`: serverless.yaml, the handlers, events/ and infra/ cannot drift."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from shared.runtime.config import load_service
from shared.tools.validate import read_infra, validate_project

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [p for p in (ROOT / "serverless.yaml", ROOT / "tests/e2e/serverless.yaml") if p.exists()]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's infra/ beside which a test writes its own serverless.yaml."""
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    return tmp_path


def validate(root: Path, functions: str) -> list[str]:
    """Problems of a service made of ``functions`` (YAML, indented by 2) in ``root``."""
    path = root / "serverless.yaml"
    path.write_text(f"service: shop\nfunctions:\n{functions}", encoding="utf-8")
    return validate_project(load_service(path, env={}), root)


def drop_resource(tf: Path, rtype: str, name: str) -> None:
    """Remove one ``resource "<rtype>" "<name>" { ... }`` block (no nested braces) from ``tf``,
    or the resource ``rtype.name`` from a Terraform JSON file (``.tf.json``)."""
    if tf.name.endswith(".tf.json"):
        doc = json.loads(tf.read_text(encoding="utf-8"))
        assert name in doc["resource"][rtype], f"{rtype}.{name} not in {tf}"
        del doc["resource"][rtype][name]
        tf.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return
    text = tf.read_text(encoding="utf-8")
    block = re.compile(rf'resource "{rtype}" "{name}" \{{.*?\n\}}\n', re.DOTALL)
    assert block.search(text), f"{rtype}.{name} not in {tf}"
    tf.write_text(block.sub("", text), encoding="utf-8")


RECORD_ORDER = """\
  record_order:
    handler: tests.support.event_functions:record_order
    events:
      - kafka:
          topic: sales.order-completed
"""
RECORD_OBJECT = """\
  record_object:
    handler: tests.support.event_functions:record_object
    events:
      - cos:
          bucket: partner-drops
"""


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repositorys_serverless_yaml_has_no_problems(config: Path) -> None:
    assert validate_project(load_service(config, env={}), ROOT) == []


def test_a_copy_of_the_infra_with_wired_functions_has_no_problems(project: Path) -> None:
    assert validate(project, RECORD_ORDER + RECORD_OBJECT) == []


def test_infra_defines_every_catalog_topic_and_bucket() -> None:
    from events.catalog import BUCKETS, TOPICS

    infra = read_infra(ROOT / "infra")

    assert set(infra.topics) == set(TOPICS)
    assert set(infra.buckets) == set(BUCKETS)


def test_handler_whose_module_does_not_import_names_function_and_module(project: Path) -> None:
    problems = validate(
        project,
        """\
  record_order:
    handler: tests.support.no_such_module:record_order
    events:
      - kafka: {topic: sales.order-completed}
""",
    )

    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.record_order.handler: cannot import 'tests.support.no_such_module': "
    )


def test_handler_missing_from_its_module_is_reported(project: Path) -> None:
    problems = validate(
        project,
        """\
  record_order:
    handler: tests.support.event_functions:record_orders
    events:
      - kafka: {topic: sales.order-completed}
""",
    )

    assert problems == [
        (
            "functions.record_order.handler: 'tests.support.event_functions' has no "
            "function 'record_orders'"
        )
    ]


def test_handler_that_is_not_decorated_is_reported(
    project: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    (project / "undecorated_handlers.py").write_text(
        "def undecorated_on_order(cloud_event):\n    return None\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(project))
    request.addfinalizer(lambda: sys.modules.pop("undecorated_handlers", None))

    problems = validate(
        project,
        """\
  on_order:
    handler: undecorated_handlers:undecorated_on_order
    events:
      - kafka: {topic: sales.order-completed}
""",
    )

    assert problems == [
        (
            "functions.on_order.handler: 'undecorated_handlers:undecorated_on_order' "
            "is not decorated with @functions_framework.aio.http or "
            "@functions_framework.aio.cloud_event"
        )
    ]


def test_http_function_wired_to_a_kafka_trigger_is_reported(project: Path) -> None:
    problems = validate(
        project,
        """\
  echo:
    handler: tests.support.http_functions:echo
    events:
      - kafka: {topic: sales.order-completed}
""",
    )

    assert problems == [
        (
            "functions.echo: has kafka trigger(s) but "
            "tests.support.http_functions:echo is an HTTP function"
        )
    ]


def test_cloudevent_function_wired_to_an_http_trigger_is_reported(project: Path) -> None:
    problems = validate(
        project,
        """\
  record_order:
    handler: tests.support.event_functions:record_order
    events:
      - http: {path: /orders, method: post}
""",
    )

    assert problems == [
        (
            "functions.record_order: has an http trigger but "
            "tests.support.event_functions:record_order is a CloudEvent function "
            "(@functions_framework.aio.cloud_event)"
        )
    ]


def test_function_without_triggers_is_reported(project: Path) -> None:
    problems = validate(project, "  tick:\n    handler: tests.support.event_functions:tick\n")

    assert problems == ["functions.tick.events: a function needs at least one trigger"]


def test_cos_trigger_on_a_bucket_missing_from_infra_is_reported(project: Path) -> None:
    drop_resource(project / "infra/generated/buckets.tf.json", "ibm_cos_bucket", "partner_drops")

    problems = validate(project, RECORD_ORDER + RECORD_OBJECT)

    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.record_object.events[0].cos.bucket: bucket 'partner-drops' has no "
        "ibm_cos_bucket in infra/ (defined there: "
    )
    assert "partner-drops" not in problems[0].split("defined there:")[1]


def test_kafka_trigger_on_a_topic_missing_from_infra_is_reported(project: Path) -> None:
    drop_resource(
        project / "infra/generated/topics.tf.json",
        "ibm_event_streams_topic",
        "sales_order_completed",
    )

    problems = validate(project, RECORD_ORDER + RECORD_OBJECT)

    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.record_order.events[0].kafka.topic: topic 'sales.order-completed' has no "
        "ibm_event_streams_topic in infra/ (defined there: "
    )


def test_dead_letter_topic_missing_from_infra_is_reported(project: Path) -> None:
    drop_resource(
        project / "infra/generated/topics.tf.json",
        "ibm_event_streams_topic",
        "platform_dead_letter",
    )

    problems = validate(project, RECORD_ORDER)

    assert problems == [
        "infra/: topic 'platform.dead-letter' (dead letters) has no ibm_event_streams_topic"
    ]


def test_dead_letter_bucket_missing_from_infra_is_reported(project: Path) -> None:
    drop_resource(project / "infra/generated/buckets.tf.json", "ibm_cos_bucket", "dead_letters")

    problems = validate(project, RECORD_ORDER)

    assert problems == ["infra/: bucket 'dead-letters' has no ibm_cos_bucket"]


def test_partition_count_drift_names_the_file_and_both_counts(project: Path) -> None:
    topics = project / "infra/generated/topics.tf.json"
    doc = json.loads(topics.read_text(encoding="utf-8"))
    assert doc["resource"]["ibm_event_streams_topic"]["sales_order_completed"]["partitions"] == 12
    doc["resource"]["ibm_event_streams_topic"]["sales_order_completed"]["partitions"] = 8
    topics.write_text(json.dumps(doc), encoding="utf-8")

    problems = validate(project, RECORD_ORDER)

    assert problems == [
        (
            "infra/generated/topics.tf.json: topic 'sales.order-completed' has 8 "
            "partitions; "
            "events/catalog.py says 12"
        )
    ]


def test_missing_infra_folder_is_reported(tmp_path: Path) -> None:
    problems = validate(tmp_path, RECORD_ORDER)

    assert problems == [f"infra/: not found under {tmp_path}"]


def test_terraform_that_does_not_parse_is_reported(project: Path) -> None:
    (project / "infra/broken.tf").write_text('resource "x" "y" {\n', encoding="utf-8")

    problems = validate(project, RECORD_ORDER)

    assert len(problems) == 1
    assert problems[0].startswith("infra/: Terraform does not parse: ")


def test_a_broken_experiments_configuration_fails_validation_not_a_request(tmp_path: Path) -> None:
    from shared.runtime.config import parse_service
    from shared.tools.validate import validate_project

    text = (
        (ROOT / "serverless.yaml")
        .read_text(encoding="utf-8")
        .replace('"weight": 50, "strategy": "lift"', '"weight": -5, "strategy": "lift"')
    )
    problems = validate_project(parse_service(text, stage="local", env={}), ROOT)
    assert [
        p
        for p in problems
        if p.startswith(
            "functions.recommend.environment.RETAILFN_EXPERIMENTS: not a valid experiments"
        )
    ]
