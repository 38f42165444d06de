"""``retailfn validate``: serverless.yaml, the code, ``events/`` and ``infra/`` cannot drift.

``serverless.yaml`` itself is checked when it is loaded (unknown topics and buckets, bad handlers'
shape, bad schedules). This module adds what needs the rest of the tree: every handler imports
and has the signature its triggers need, and every topic and bucket a trigger uses is defined in
the Terraform under ``infra/`` (read with python-hcl2), with the partitions the catalog says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from events.catalog import TOPICS
from shared.config import ServiceConfig
from shared.runtime.loader import HandlerError, load_function

_BUCKET_PREFIX = re.compile(r"^\$\{var\.[a-z_]*prefix[a-z_]*\}-?")


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class InfraDefinitions:
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Topic name -> its attributes and the file that defines it."""
    buckets: dict[str, str] = field(default_factory=dict)
    """Logical bucket name -> the file that defines it."""


def _resources(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for block in doc.get("resource", []):
        for rtype, named in block.items():
            for rname, attrs in named.items():
                out.append((_unquote(rtype), _unquote(rname), attrs))
    return out


def read_infra(folder: Path) -> InfraDefinitions:
    """Topics, buckets and subscriptions defined by the Terraform files in ``folder``."""
    found = InfraDefinitions()
    for path in sorted(folder.rglob("*.tf")):
        with path.open(encoding="utf-8") as f:
            doc = hcl2.load(f)
        rel = str(path.relative_to(folder.parent))
        for rtype, _rname, attrs in _resources(doc):
            if rtype == "ibm_event_streams_topic":
                name = _unquote(attrs.get("name"))
                found.topics[name] = {"file": rel, "partitions": attrs.get("partitions"),
                                      "config": {_unquote(k): _unquote(v) for k, v in
                                                 (attrs.get("config") or {}).items()}}
            elif rtype == "ibm_cos_bucket":
                logical = _BUCKET_PREFIX.sub("", _unquote(attrs.get("bucket_name", "")))
                found.buckets[logical] = rel
    return found


def validate_project(service: ServiceConfig, root: Path) -> list[str]:
    problems: list[str] = []
    for name, fn in service.functions.items():
        if not fn.events:
            problems.append(f"functions.{name}.events: a function needs at least one trigger")
        try:
            loaded = load_function(name, fn.handler)
        except HandlerError as exc:
            problems.append(str(exc))
            continue
        kinds = {e.kind for e in fn.events}
        if "http" in kinds and loaded.signature != "http":
            problems.append(f"functions.{name}: has an http trigger but {fn.handler} is a "
                            "CloudEvent function (@functions_framework.aio.cloud_event)")
        if kinds - {"http"} and loaded.signature != "cloudevent":
            problems.append(f"functions.{name}: has {', '.join(sorted(kinds - {'http'}))} "
                            f"trigger(s) but {fn.handler} is an HTTP function")

    infra_dir = root / "infra"
    if not infra_dir.is_dir():
        problems.append(f"infra/: not found under {root}")
        return problems
    try:
        infra = read_infra(infra_dir)
    except Exception as exc:  # python-hcl2 raises lark errors of several kinds
        problems.append(f"infra/: Terraform does not parse: {exc}")
        return problems
    for name, fn in service.functions.items():
        for i, ev in enumerate(fn.events):
            for topic in ev.kafka.topics if ev.kind == "kafka" else ():
                if topic not in infra.topics:
                    problems.append(
                        f"functions.{name}.events[{i}].kafka.topic: topic {topic!r} has no "
                        f"ibm_event_streams_topic in infra/ (defined there: "
                        f"{', '.join(sorted(infra.topics)) or 'none'})")
            if ev.kind == "cos" and ev.cos.bucket not in infra.buckets:
                problems.append(
                    f"functions.{name}.events[{i}].cos.bucket: bucket {ev.cos.bucket!r} has no "
                    f"ibm_cos_bucket in infra/ (defined there: "
                    f"{', '.join(sorted(infra.buckets)) or 'none'})")
    for topic in sorted(service.topics_used()):
        if topic in infra.topics:
            want = TOPICS[topic].partitions
            have = infra.topics[topic]["partitions"]
            if have != want:
                problems.append(f"{infra.topics[topic]['file']}: topic {topic!r} has {have} "
                                f"partitions; events/catalog.py says {want}")
        elif not any(topic in e.kafka.topics
                     for f in service.functions.values() for e in f.events if e.kind == "kafka"):
            problems.append(f"infra/: topic {topic!r} (dead letters) has no "
                            "ibm_event_streams_topic")
    for b in sorted(service.buckets_used()):
        if b not in infra.buckets and not any(
                e.kind == "cos" and e.cos.bucket == b
                for f in service.functions.values() for e in f.events):
            problems.append(f"infra/: bucket {b!r} has no ibm_cos_bucket")
    return problems
