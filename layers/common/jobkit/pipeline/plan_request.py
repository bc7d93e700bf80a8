"""The planner's input, from the schedule, the API, the CLI or the planner itself (a run's
next shard), parsed; and the run it opens: its id and its header as it is opened."""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobkit.domain.envelope import Identifier, describe_validation_error
from jobkit.domain.errors import PermanentError
from jobkit.domain.replay import BackfillSpec
from jobkit.pipeline.shard_range import ShardRequest
from jobkit.runs.models import RunHeader, Trigger

_UNSUBSTITUTED = "<aws.scheduler.scheduled-time>"


class PlanRequest(BaseModel):
    """The planner's input: from the schedule, the API or the CLI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: Trigger = Trigger.SCHEDULE
    scheduled_time: datetime | None = None
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
    requested_by: str = Field("scheduler", max_length=128)
    client_ids: list[Identifier] | None = None
    correlation_id: str | None = Field(None, max_length=128)
    dry_run: bool = False
    backfill: BackfillSpec | None = None  # trigger ``backfill``: its window and mode


class _ScheduledEvent(BaseModel):
    """The classic EventBridge scheduled-rule payload, accepted too."""

    model_config = ConfigDict(populate_by_name=True)

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    time: datetime
    id: str


def parse_plan_request(event: dict[str, Any]) -> PlanRequest | ShardRequest:
    """Parse a planner event; a bad one fails with the offending field named."""
    try:
        if "shard" in event:
            return ShardRequest.model_validate(event)
        if "detail-type" in event:
            scheduled = _ScheduledEvent.model_validate(event)
            return PlanRequest(scheduled_time=scheduled.time, correlation_id=scheduled.id)
        if event.get("scheduled_time") == _UNSUBSTITUTED:
            # Emulators may not substitute Scheduler's context attributes.
            event = {**event, "scheduled_time": None}
        return PlanRequest.model_validate(event)
    except ValidationError as exc:
        raise PermanentError(f"invalid planner event: {describe_validation_error(exc)}") from exc


def schedule_run_id(job_type: str, scheduled_time: datetime) -> str:
    return f"{job_type}.{scheduled_time.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def manual_run_id(job_type: str, now: datetime) -> str:
    """A run started by hand (API, CLI): unique, and sorted by when it was asked for."""
    return f"{job_type}.{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{uuid.uuid4().hex[:8]}"


def fire_time(request: PlanRequest, now: datetime) -> datetime | None:
    """A scheduled fire's time (Scheduler's, else the minute it fired in); None for a run
    asked for by hand."""
    if request.trigger is not Trigger.SCHEDULE:
        return None
    return request.scheduled_time or now.replace(second=0, microsecond=0)


def opening_header(job_type: str, request: PlanRequest, run_id: str, now: datetime) -> RunHeader:
    """A run as it is opened, PLANNING: by its planner, or by the API before invoking it."""
    return RunHeader(
        run_id=run_id,
        job_type=job_type,
        trigger=request.trigger,
        requested_by=request.requested_by,
        scheduled_for=fire_time(request, now),
        correlation_id=request.correlation_id or run_id,
        created_at=now,
        requested_clients=sorted(set(request.client_ids or ())),
        backfill=request.backfill,
    )


def plan_run_id(job_type: str, request: PlanRequest, now: datetime) -> str:
    """The run a request plans: the one it names, its fire's, or a new one asked for by hand."""
    if request.run_id:
        return request.run_id
    fired_at = fire_time(request, now)
    if fired_at is not None:
        return schedule_run_id(job_type, fired_at)
    return manual_run_id(job_type, now)
