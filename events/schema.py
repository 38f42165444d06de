"""JSON Schema of every payload, for partners and for the committed ``events/schemas/`` files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from events.registry import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(ce_type: str) -> str:
    """The ``$id`` of a type's schema; also fit for the CloudEvents ``dataschema`` attribute."""
    return f"urn:retailfn:schema:{ce_type}"


def json_schemas() -> dict[str, dict[str, Any]]:
    """CloudEvents type -> JSON Schema (2020-12) of its ``data``."""
    schemas = {}
    for ce_type, model in sorted(EVENT_TYPES.items()):
        body = model.model_json_schema(mode="validation")
        body.pop("title", None)
        schemas[ce_type] = {"$schema": DIALECT, "$id": schema_id(ce_type), "title": ce_type, **body}
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def export_schemas(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<ce type>.json`` per type into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ce_type, schema in json_schemas().items():
        path = out_dir / f"{ce_type}.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m events.schema regenerates the committed files
    for path in export_schemas():
        print(path)
