"""The service's HTTP API as an OpenAPI 3.1 document, and as a plain HTML page.

Routes, methods and auth come from ``serverless.yaml``; what an operation takes and answers is
declared next to its function with :func:`shared.platform.operations.operation`. A route without a
declaration is still documented, from ``serverless.yaml`` alone. The runtime serves the document
at ``/openapi.json`` and ``/docs`` (:mod:`shared.runtime.http`); ``retailfn openapi`` prints it.

Schemas come from pydantic (validation mode for what is sent, serialization mode for what is
answered), all generated in one pass so that every model lands once in ``components/schemas``.
Every error is an ``application/problem+json`` :class:`Problem`; the statuses every route of a
kind can answer (401/403/503 with auth, 400/413/422 with a body, 500 always) are added here, the
function declares the rest.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, SkipJsonSchema
from pydantic_core import CoreSchema

from shared.platform.operations import JSON, Answer, Operation, declared_operations
from shared.platform.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE
from shared.runtime.config import FunctionConfig, HttpAuth, HttpTrigger, ServiceConfig
from shared.runtime.loader import LoadedFunction, load_function

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"


# --- the problem document ----------------------------------------------------------------------
# Mirrors shared.platform.problems.Problem.to_dict(); named Problem so the schema is.


class FieldError(BaseModel):
    """One field that failed validation. The value sent is never echoed back."""

    loc: str = Field(description="Where, e.g. `lines[0].on_hand` or `query.region`.")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="The kind of error, e.g. `missing`, `greater_than_equal`.")


def _absent_not_null(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class Problem(BaseModel):
    """An RFC 9457 problem document. Extra members (e.g. `limit_bytes`, `request_id`) may
    appear."""

    # Members left out of a document are absent, never null: hence SkipJsonSchema[None] and
    # no null defaults.
    model_config = ConfigDict(extra="allow", json_schema_extra=_absent_not_null)

    type: str = Field(
        json_schema_extra={"format": "uri-reference"},
        description=f"`about:blank` or one of ours under {PROBLEM_TYPE_BASE}",
    )
    title: str = Field(description="The status phrase, or the problem type's title.")
    status: int = Field(ge=100, le=599)
    detail: str | SkipJsonSchema[None] = Field(
        None, description="What went wrong with this request."
    )
    instance: str | SkipJsonSchema[None] = None
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        None, description="One entry per invalid field (422, and 400 for query parameters)."
    )


_COMMON_PROBLEMS = {
    400: "The request is malformed (e.g. the body is not JSON)",
    401: "Credentials are missing or not valid; `WWW-Authenticate` says which schemes work",
    403: "The credentials lack a required scope, or do not act for this partner",
    413: "The request body is larger than the runtime accepts",
    422: "The body failed validation; `errors` names each field",
    500: "The function failed unexpectedly; the answer quotes the request id it was logged with",
    503: "A dependency (key store, token issuer, event bus) is unavailable; retry after "
    "`Retry-After` seconds",
}
_PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": "The authentication schemes to use"},
    405: {"Allow": "The methods the path serves"},
    503: {"Retry-After": "Seconds to wait before retrying"},
}


# --- the document ------------------------------------------------------------------------------


def openapi_document(
    service: ServiceConfig,
    functions: Mapping[str, LoadedFunction] | None = None,
    *,
    version: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``service``'s http triggers.

    ``functions`` are the loaded handlers whose routes to document (what the runtime serves);
    by default every function with an http trigger is loaded from its ``handler``.
    ``version`` defaults to the installed ``retailfn`` package's.
    """
    if functions is None:
        functions = {
            name: load_function(name, fn.handler)
            for name, fn in service.functions.items()
            if fn.triggers("http")
        }
    routes = [
        _Route(name, fn, trigger, _declared_for(functions[name], trigger))
        for name, fn in service.functions.items()
        if name in functions
        for trigger in fn.triggers("http")
    ]
    for name, fn in service.functions.items():
        routed = {t.path for t in fn.triggers("http")}
        for op in declared_operations(functions[name].callable) if name in functions else ():
            if op.path is not None and op.path not in routed:
                raise ValueError(
                    f"{fn.handler} declares an operation for {op.path}, "
                    f"which serverless.yaml does not route to functions.{name}"
                )
    schemas = _Schemas()
    schemas.add(Problem, "serialization")
    for route in routes:
        route.register(schemas)
    schemas.generate()

    paths: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for route in routes:
        operation_id = route.operation_id(used_ids)
        used_ids.add(operation_id)
        paths.setdefault(route.trigger.path, {})[route.trigger.method] = route.document(
            operation_id, schemas
        )

    scopes = sorted({s for r in routes for s in r.trigger.auth.scopes})
    components: dict[str, Any] = {"schemas": schemas.components()}
    if any(r.trigger.auth.type != "none" for r in routes):
        components["securitySchemes"] = _security_schemes(scopes)
    tags = [
        {"name": name, "description": fn.description} if fn.description else {"name": name}
        for name, fn in service.functions.items()
        if name in functions and fn.triggers("http")
    ]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": service.service,
            "version": version or _package_version(),
            "description": (
                f"The HTTP API of {service.service} (stage `{service.stage}`), generated from "
                "serverless.yaml and the functions' declarations. Every error is an RFC 9457 "
                f"problem document (`{PROBLEM_JSON}`). Every answer carries `X-Request-Id` "
                "(the caller's, if it sent a valid one)."
            ),
        },
        "tags": tags,
        "paths": paths,
        "components": components,
    }


def _package_version() -> str:
    try:
        return importlib.metadata.version("retailfn")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _declared_for(function: LoadedFunction, trigger: HttpTrigger) -> Operation | None:
    declared = declared_operations(function.callable)
    for op in declared:
        if op.path == trigger.path:
            return op
    return next((op for op in declared if op.path is None), None)


class _Schemas:
    """Every type the document needs, turned into JSON Schema in one pass."""

    def __init__(self) -> None:
        self._inputs: dict[tuple[int, str], tuple[tuple[int, str], JsonSchemaMode, CoreSchema]] = {}
        self._generated: dict[tuple[int, str], dict[str, Any]] = {}
        self._definitions: dict[str, Any] = {}
        self._hidden: set[str] = set()
        self._types: list[Any] = []  # keeps every type alive: keys are ids

    def add(self, tp: Any, mode: JsonSchemaMode) -> None:
        key = (id(tp), mode)
        if key not in self._inputs:
            self._inputs[key] = (key, mode, TypeAdapter(tp).core_schema)
            self._types.append(tp)

    def generate(self) -> None:
        generator = GenerateJsonSchema(ref_template=REF_TEMPLATE)
        generated, definitions = generator.generate_definitions(list(self._inputs.values()))
        self._generated = {key: schema for (key, _mode), schema in generated.items()}
        self._definitions = {name: schema for name, schema in definitions.items()}

    def of(self, tp: Any, mode: str) -> dict[str, Any]:
        return self._generated[(id(tp), mode)]

    def resolved(self, tp: Any, mode: str) -> dict[str, Any]:
        schema = self.of(tp, mode)
        ref = schema.get("$ref", "")
        return self._definitions[_ref_name(ref)] if ref else schema

    def hide_if_unused(self, tp: Any, mode: str) -> None:
        """Leave ``tp``'s own definition out (a query model is documented as parameters)."""
        ref = self.of(tp, mode).get("$ref")
        if ref:
            self._hidden.add(_ref_name(ref))

    def components(self) -> dict[str, Any]:
        kept = dict(self._definitions)
        for name in self._hidden:
            others = json.dumps({k: v for k, v in kept.items() if k != name})
            if json.dumps(REF_TEMPLATE.format(model=name)) not in others:
                kept.pop(name, None)
        return dict(sorted(kept.items()))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


@dataclass
class _Route:
    function: str
    config: FunctionConfig
    trigger: HttpTrigger
    declared: Operation | None

    @property
    def op(self) -> Operation:
        return self.declared or Operation(summary=self.config.description or self.function)

    def register(self, schemas: _Schemas) -> None:
        op = self.op
        if op.request is not None:
            schemas.add(op.request, "validation")
        if op.query is not None:
            schemas.add(op.query, "validation")
        for name in self.trigger.path_params:
            schemas.add(op.path_params.get(name, str), "validation")
        for header in op.headers:
            schemas.add(header.schema, "validation")
        for answer in self._answers().values():
            if answer.model is not None:
                schemas.add(answer.model, "serialization")

    def _answers(self) -> dict[int, Answer]:
        answers = {
            status: value if isinstance(value, Answer) else Answer(value)
            for status, value in self.op.responses.items()
        }
        return answers or {200: Answer(description="OK")}

    def operation_id(self, used: set[str]) -> str:
        if self.op.operation_id:
            return self.op.operation_id
        candidate = self.function
        if candidate in used or len(self.config.triggers("http")) > 1:
            slug = "_".join(p.strip("{}") for p in self.trigger.path.split("/") if p)
            candidate = f"{self.function}_{self.trigger.method}_{slug}".replace("-", "_")
        return candidate

    def document(self, operation_id: str, schemas: _Schemas) -> dict[str, Any]:
        op = self.op
        doc: dict[str, Any] = {
            "operationId": operation_id,
            "summary": op.summary,
            "tags": list(op.tags or (self.function,)),
        }
        description = op.description or self.config.description
        if description:
            doc["description"] = description
        parameters = self._parameters(schemas)
        if parameters:
            doc["parameters"] = parameters
        if op.request is not None:
            doc["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": schemas.of(op.request, "validation")}},
            }
        doc["responses"] = self._responses(schemas)
        doc["security"] = _security(self.trigger.auth)
        return doc

    def _parameters(self, schemas: _Schemas) -> list[dict[str, Any]]:
        op = self.op
        out = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": schemas.of(op.path_params.get(name, str), "validation"),
            }
            for name in self.trigger.path_params
        ]
        if op.query is not None:
            model = schemas.resolved(op.query, "validation")
            required = set(model.get("required", ()))
            for name, prop in model.get("properties", {}).items():
                prop = {k: v for k, v in prop.items() if k != "title"}
                param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
                description = prop.pop("description", None) or _field_doc(op.query, name)
                if description:
                    param["description"] = description
                param["schema"] = _not_null(prop)
                out.append(param)
            schemas.hide_if_unused(op.query, "validation")
        for header in op.headers:
            out.append(
                {
                    "name": header.name,
                    "in": "header",
                    "required": header.required,
                    "description": header.description,
                    "schema": schemas.of(header.schema, "validation"),
                }
            )
        return out

    def _responses(self, schemas: _Schemas) -> dict[str, Any]:
        responses: dict[str, Any] = {}
        for status, answer in sorted(self._answers().items()):
            response: dict[str, Any] = {"description": answer.description or _phrase(status)}
            if answer.headers:
                response["headers"] = _headers(answer.headers)
            if answer.model is not None:
                response["content"] = {
                    answer.media_type: {"schema": schemas.of(answer.model, "serialization")}
                }
            responses[str(status)] = response
        problem = schemas.of(Problem, "serialization")
        for status, when in sorted(self._problems().items()):
            response = {"description": when, "content": {PROBLEM_JSON: {"schema": problem}}}
            if status in _PROBLEM_HEADERS:
                response["headers"] = _headers(_PROBLEM_HEADERS[status])
            responses[str(status)] = response
        return responses

    def _problems(self) -> dict[int, str]:
        common = {500}
        if self.trigger.auth.type != "none":
            common |= {401, 403, 503}
        if self.op.request is not None:
            common |= {400, 413, 422}
        problems = {status: _COMMON_PROBLEMS[status] for status in common}
        problems.update(self.op.problems)
        return problems


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    # An optional query parameter is absent, never null: `x | None = None` is just `x`.
    alternatives = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    if "anyOf" in schema and len(alternatives) < len(schema["anyOf"]):
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if rest.get("default", ...) is None:
            del rest["default"]
        return (
            {**alternatives[0], **rest}
            if len(alternatives) == 1
            else {**rest, "anyOf": alternatives}
        )
    return schema


def _field_doc(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    return info.description if info is not None else None


def _headers(headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _security(auth: HttpAuth) -> list[dict[str, list[str]]]:
    if auth.type == "none":
        return []
    # shared.platform.auth.authenticate takes either credential whatever the route's auth type says.
    scopes = list(auth.scopes)
    return [{"ApiKey": scopes}, {"bearerAuth": scopes}]


def _security_schemes(scopes: Iterable[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{s}`" for s in scopes) or "none"
    return {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": (
                "A partner API key `rfk_<key_id>_<secret>`, sent as `X-API-Key: <key>` or as "
                "`Authorization: ApiKey <key>` (not both). The key holds scopes; an operation's "
                f"security lists the ones it needs (used here: {listed}; `admin` holds all)."
            ),
        },
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "An OIDC access token (RS256 or ES256) from the configured issuer, with `exp`, "
                "`iat`, `iss`, `aud` and `sub`. Scopes come from `scope` (space-separated) or "
                "`scp`; the partner from the partner claim. An operation's security lists the "
                f"scopes it needs (used here: {listed}; `admin` holds all)."
            ),
        },
    }


# --- the docs page -----------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;
color:#1d1d1f}
h1 small{color:#666;font-weight:normal}
code{font:13px ui-monospace,monospace;background:#f3f3f5;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #e3e3e8;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#fafafc;font-weight:600}
section.op{border:1px solid #e3e3e8;border-radius:6px;padding:.25rem 1rem;margin:1rem 0}
.method{display:inline-block;min-width:4em;text-align:center;border-radius:3px;color:#fff;
font:600 13px ui-monospace,monospace;padding:.1em .4em;background:#555}
.get{background:#2f6fb3}.post{background:#2e8540}.put,.patch{background:#b36b00}
.delete{background:#b3261e}
.muted{color:#666}.req{color:#b3261e;font-weight:600}
nav ul{list-style:none;padding:0}nav li{margin:.2rem 0}
"""


def render_docs(document: Mapping[str, Any]) -> str:
    """``document`` as one self-contained HTML page: operations, parameters, bodies, answers and
    schemas, rendered server-side (no scripts, no assets from elsewhere)."""
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    operations = [
        (path, method, op)
        for path, item in document.get("paths", {}).items()
        for method, op in item.items()
    ]
    components = document.get("components", {})
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} API</title><style>{_STYLE}</style></head><body>",
        (
            f"<header><h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}"
            f"</small></h1><p>{_md(info.get('description', ''))}</p>"
        ),
        (
            '<p>Machine-readable: <a href="openapi.json">openapi.json</a> '
            f"(OpenAPI {_e(document.get('openapi', ''))})</p></header>"
        ),
        "<nav><h2>Operations</h2><ul>",
    ]
    for path, method, op in operations:
        out.append(
            f'<li><a href="#op-{_e(op["operationId"])}">{_method(method)} '
            f"<code>{_e(path)}</code></a> {_e(op.get('summary', ''))}</li>"
        )
    out.append("</ul></nav><main>")
    for path, method, op in operations:
        out.append(_operation_html(path, method, op, components))
    schemas = components.get("schemas", {})
    if schemas:
        out.append("<h2>Schemas</h2>")
        for name, schema in schemas.items():
            out.append(f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>')
            if schema.get("description"):
                out.append(f"<p>{_md(schema['description'])}</p>")
            out.append(_schema_html(schema))
            out.append("</section>")
    schemes = components.get("securitySchemes", {})
    if schemes:
        out.append("<h2>Security schemes</h2>")
        for name, scheme in schemes.items():
            out.append(
                f'<section id="security-{_e(name)}"><h3>{_e(name)}</h3>'
                f"<p>{_md(scheme.get('description', ''))}</p></section>"
            )
    out.append("</main></body></html>")
    return "\n".join(out)


def _operation_html(
    path: str, method: str, op: Mapping[str, Any], components: Mapping[str, Any]
) -> str:
    out = [
        f'<section class="op" id="op-{_e(op["operationId"])}">',
        f"<h3>{_method(method)} <code>{_e(path)}</code></h3>",
        (
            f"<p><strong>{_e(op.get('summary', ''))}</strong> "
            f'<span class="muted">({_e(op["operationId"])})</span></p>'
        ),
    ]
    if op.get("description") and op["description"] != op.get("summary"):
        out.append(f"<p>{_md(op['description'])}</p>")
    security = op.get("security") or []
    if security:
        ways = [
            " + ".join(
                f'<a href="#security-{_e(name)}">{_e(name)}</a>'
                + (
                    f" (scopes: {', '.join(f'<code>{_e(s)}</code>' for s in scopes)})"
                    if scopes
                    else ""
                )
                for name, scopes in requirement.items()
            )
            for requirement in security
        ]
        out.append(f"<p>Authentication: {' <em>or</em> '.join(ways)}</p>")
    else:
        out.append("<p>Authentication: none</p>")
    parameters = op.get("parameters") or []
    if parameters:
        out.append(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
            "<th>description</th></tr>"
        )
        for p in parameters:
            required = ' <span class="req">required</span>' if p.get("required") else ""
            out.append(
                f"<tr><td><code>{_e(p['name'])}</code>{required}</td><td>{_e(p['in'])}"
                f"</td><td>{_type_html(p.get('schema', {}))}</td>"
                f"<td>{_md(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append("<h4>Request body</h4>")
        for media_type, content in body.get("content", {}).items():
            out.append(
                f"<p><code>{_e(media_type)}</code>: {_type_html(content.get('schema', {}))}</p>"
            )
    out.append(
        "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th>"
        "<th>headers</th></tr>"
    )
    for status, response in op.get("responses", {}).items():
        bodies = (
            "<br>".join(
                f"<code>{_e(mt)}</code> {_type_html(c.get('schema', {}))}"
                for mt, c in response.get("content", {}).items()
            )
            or "—"
        )
        headers = (
            "<br>".join(
                f"<code>{_e(name)}</code>: {_md(h.get('description', ''))}"
                for name, h in response.get("headers", {}).items()
            )
            or "—"
        )
        out.append(
            f"<tr><td><strong>{_e(status)}</strong></td>"
            f"<td>{_md(response.get('description', ''))}</td><td>{bodies}</td>"
            f"<td>{headers}</td></tr>"
        )
    out.append("</table></section>")
    return "\n".join(out)


def _schema_html(schema: Mapping[str, Any]) -> str:
    """A schema as a table of its properties, or as one line when it has none."""
    if "properties" not in schema:
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if alternatives and any("properties" in a for a in alternatives):
            return (
                "<p>One of:</p><ul>"
                + "".join(
                    f"<li>{_schema_html(a) if 'properties' in a else _type_html(a)}</li>"
                    for a in alternatives
                )
                + "</ul>"
            )
        return f"<p>{_type_html(schema)}</p>"
    required = set(schema.get("required", ()))
    rows = ["<table><tr><th>field</th><th>type</th><th>description</th></tr>"]
    for name, prop in schema["properties"].items():
        mark = ' <span class="req">required</span>' if name in required else ""
        rows.append(
            f"<tr><td><code>{_e(name)}</code>{mark}</td><td>{_type_html(prop)}</td>"
            f"<td>{_md(prop.get('description', ''))}</td></tr>"
        )
    rows.append("</table>")
    extra = schema.get("additionalProperties")
    if extra is False:
        rows.append('<p class="muted">No other fields are accepted.</p>')
    elif extra is True:
        rows.append('<p class="muted">Other fields may appear.</p>')
    return "".join(rows)


_CONSTRAINTS = {
    "minimum": "≥ {}",
    "exclusiveMinimum": "> {}",
    "maximum": "≤ {}",
    "exclusiveMaximum": "< {}",
    "minLength": "length ≥ {}",
    "maxLength": "length ≤ {}",
    "minItems": "≥ {} items",
    "maxItems": "≤ {} items",
    "minProperties": "≥ {} entries",
    "maxProperties": "≤ {} entries",
    "format": "{}",
}


def _type_html(schema: Mapping[str, Any]) -> str:
    """A one-line, linked summary of a schema's type and constraints."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            joiner = " and " if key == "allOf" else " or "
            text = joiner.join(_type_html(s) for s in schema[key])
            return text + _notes(schema)
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return (
            "one of "
            + ", ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
            + _notes(schema)
        )
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_type_html(schema.get('items', {}))}{_notes(schema)}"
    if kind == "object" and "properties" in schema:
        return _schema_html(schema)
    if kind == "object":
        values = schema.get("additionalProperties")
        patterns = schema.get("patternProperties", {})
        if patterns:
            key, values = next(iter(patterns.items()))
            return f"map of <code>{_e(key)}</code> to {_type_html(values)}{_notes(schema)}"
        if isinstance(values, dict):
            return f"map to {_type_html(values)}{_notes(schema)}"
    return f"<code>{_e(str(kind))}</code>{_notes(schema)}"


def _notes(schema: Mapping[str, Any]) -> str:
    notes = [
        _e(template.format(schema[key])) for key, template in _CONSTRAINTS.items() if key in schema
    ]
    if "pattern" in schema:
        notes.append(f"matching <code>{_e(schema['pattern'])}</code>")
    if "default" in schema:
        notes.append(f"default <code>{_e(json.dumps(schema['default']))}</code>")
    return f' <span class="muted">({", ".join(notes)})</span>' if notes else ""


def _method(method: str) -> str:
    return f'<span class="method {_e(method)}">{_e(method.upper())}</span>'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _md(text: str) -> str:
    """Escape, then turn `code` (or rST ``code``) spans into <code>: all the markup the
    descriptions and docstrings use."""
    parts = _e(text).replace("``", "`").split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
