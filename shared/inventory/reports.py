"""What a partner posts to ``POST /v1/partners/{partner}/stock``, and how it becomes events."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from events.envelope import Event, new_event
from events.fields import Identifier, PartnerSku, Quantity, Region, UtcDatetime
from events.inventory import StockReported, Unit
from shared.inventory.rules import InventoryRuleViolation, check_not_ahead
from shared.platform.problems import Problem, from_validation_error, problem_type


class StockLine(BaseModel):
    """One stock level as a partner reports it. ``reported_at`` defaults to the time received."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_sku: PartnerSku
    location_id: Identifier
    region: Region
    on_hand: Quantity
    reserved: Quantity = Decimal(0)
    incoming: Quantity = Decimal(0)
    unit: Unit = "each"
    units_per_pack: int | None = Field(None, ge=1, le=100_000, validate_default=True)
    reported_at: UtcDatetime | None = None
    sequence: int | None = Field(None, ge=0)

    @field_validator("units_per_pack")
    @classmethod
    def _pack_size_goes_with_packs(cls, value: int | None, info: ValidationInfo) -> int | None:
        # StockReported has the same rule, but checked here it is reported with every other bad
        # field of the request, and named by its field rather than by the whole line.
        unit = info.data.get("unit")
        if unit is None:  # the unit itself is invalid; that error says enough
            return value
        packed = unit in ("pack", "case")
        if packed and value is None:
            raise ValueError(f"units_per_pack is required when unit is {unit!r}")
        if not packed and value is not None:
            raise ValueError(f"units_per_pack only applies to pack or case, not {unit!r}")
        return value


class StockBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lines: list[StockLine] = Field(min_length=1)


class StockPost(BaseModel):
    """Either one line or ``{"lines": [...]}``, with at least one line."""

    model_config = ConfigDict(frozen=True)

    lines: list[StockLine] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, dict) and "lines" not in value:
            return {"lines": [value]}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # What is accepted is either form (see _one_or_many), so say so in the OpenAPI document.
        ref = handler(core_schema)
        if handler.mode != "validation":
            return ref
        schema = handler.resolve_ref_schema(ref)
        batch = {k: v for k, v in schema.items() if k not in ("title", "description")}
        one_line = batch["properties"]["lines"]["items"]
        title = schema.get("title")
        schema.clear()
        schema.update(
            title=title,
            description='Either one line or `{"lines": [...]}`.',
            anyOf=[batch, one_line],
        )
        return ref


class StockAccepted(BaseModel):
    """The answer to a stock post: each line was published as one ``stock-reported`` event."""

    accepted: int = Field(ge=0, description="How many lines were published.")
    event_ids: list[str] = Field(description="The events' ids, in the order of the lines.")


def stock_events(
    partner: str,
    post: StockPost,
    *,
    received_at: datetime | None = None,
    idempotency_key: str | None = None,
    max_future_skew: timedelta | None = None,
) -> list[Event[StockReported]]:
    """One ``stock-reported`` event per line. With an idempotency key the ids are derived from
    it, so that a retried request publishes the same ids and consumers drop the copies. With
    ``max_future_skew``, a line dated further than that after ``received_at`` is a 422."""
    received_at = received_at or datetime.now(UTC)
    events = []
    problems: list[Problem] = []
    for n, line in enumerate(post.lines):
        try:
            payload = StockReported(
                partner_id=partner,
                **{
                    **line.model_dump(exclude_none=True),
                    "reported_at": line.reported_at or received_at,
                },
            )
        except ValidationError as exc:  # rules across fields, e.g. packs need units_per_pack
            problems.append(from_validation_error(exc, prefix=f"lines[{n}]"))
            continue
        if max_future_skew is not None:
            try:
                check_not_ahead(payload.reported_at, received_at, max_future_skew)
            except InventoryRuleViolation as exc:
                problems.append(
                    Problem(
                        422,
                        errors=[
                            {
                                "loc": f"lines[{n}].reported_at",
                                "msg": str(exc).removeprefix("reported_at: "),
                                "type": "too_far_ahead",
                            }
                        ],
                    )
                )
                continue
        event_id = (
            str(
                uuid.UUID(
                    bytes=hashlib.sha256(f"{partner}\0{idempotency_key}\0{n}".encode()).digest()[
                        :16
                    ],
                    version=4,
                )
            )
            if idempotency_key
            else None
        )
        events.append(new_event(payload, source=f"/partners/{partner}/stock", id=event_id))
    if problems:
        errors = [e for p in problems for e in p.errors or ()]  # each has its errors
        raise Problem(
            422,
            "Request body is not valid",
            f"{len(errors)} field{'s' if len(errors) != 1 else ''} failed validation",
            type=problem_type("validation-error"),
            errors=errors,
        )
    return events
