"""Backfills: re-run clients over a window of time (202 + the run), or count first (200)."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.models import (
    BackfillClientCount,
    BackfillDryRunOut,
    RunOut,
    StartBackfill,
)
from jobkit.api.responses import ApiError, documented
from jobkit.api.services import Services, services
from jobkit.api.urls import public_url
from jobkit.domain.replay import backfill_run_id
from jobkit.observability import logger
from jobkit.runs.models import RunHeader, RunStatus, Trigger

if TYPE_CHECKING:
    from jobkit.pipeline.plan_request import PlanRequest

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


def _responses() -> dict[int, OpenAPIResponse]:
    responses = documented(
        202, "Backfill accepted", conflict="The request id names another backfill"
    )
    responses[200] = {
        "description": "Dry run: what the backfill would do, per client",
        "content": {"application/json": {"model": BackfillDryRunOut}},
    }
    return responses


@router.post(
    "/jobs/<job_type>/backfills",
    responses=_responses(),
    description=(
        "Re-run the named clients over a window of time, on the backfill lane (its own queue"
        " and concurrency cap), with a cursor of its own: the clients' live runs are neither"
        " held back nor moved. mode missing processes only record versions never processed;"
        " mode all processes every record again as a new generation. dryRun answers 200 with"
        " the counts and writes nothing."
    ),
)
def start_backfill(
    job_type: str, body: Annotated[StartBackfill, Body()]
) -> Response[RunOut | BackfillDryRunOut]:
    api = services(router)
    planner = api.planner(job_type)
    who = caller(router.current_event)
    who.require(Scope.TRIGGER, job_type, body.client_ids)
    if not api.windowed(job_type):
        raise ApiError(
            422, f"job type {job_type} cannot be backfilled: its fetch takes no time window"
        )
    now = datetime.now(UTC)
    run_id = backfill_run_id(job_type, body.request_id, now)
    if body.dry_run:
        return _dry_run(api, job_type, body, run_id)
    request = _plan_request(job_type, body, run_id, who.key_id)
    header = _open(api, job_type, request, now)
    if header.status is RunStatus.PLANNING:  # new, or its planner's invocation was lost
        api.invoke_async(planner["function"], request.model_dump(mode="json"))
    logger.info(
        "backfill requested",
        extra={"run_id": run_id, "job_type": job_type, "key_id": who.key_id, "mode": body.mode},
    )
    location = public_url(router.current_event, f"/runs/{run_id}", api.is_local)
    return Response[RunOut | BackfillDryRunOut](
        status_code=202,
        content_type="application/json",
        body=RunOut.of_header(header),
        headers={"Location": location},
    )


def _dry_run(
    api: Services, job_type: str, body: StartBackfill, run_id: str
) -> Response[RunOut | BackfillDryRunOut]:
    counts = api.window_counter().count(job_type, body.client_ids, body.spec(), run_id)
    answer = BackfillDryRunOut(
        job_type=job_type,
        mode=body.mode.value,
        window_from=body.window_from,
        window_to=body.window_to,
        clients=[BackfillClientCount.model_validate(c, from_attributes=True) for c in counts],
    )
    return Response[RunOut | BackfillDryRunOut](
        status_code=200,
        content_type="application/json",
        body=answer,
    )


def _plan_request(job_type: str, body: StartBackfill, run_id: str, key_id: str) -> "PlanRequest":
    """The planner's own request for the backfill's run."""
    # The planner's module loads here, not at each cold start: most requests start no run.
    from jobkit.pipeline.plan_request import PlanRequest

    return PlanRequest(
        trigger=Trigger.BACKFILL,
        run_id=run_id,
        requested_by=f"key:{key_id}",
        client_ids=body.client_ids,
        correlation_id=router.current_event.request_context.request_id or run_id,
        backfill=body.spec(),
    )


def _open(api: Services, job_type: str, request: "PlanRequest", now: datetime) -> RunHeader:
    """The backfill's run, PLANNING, or the one this request id already started."""
    from jobkit.pipeline.plan_request import opening_header  # loaded with _plan_request's

    assert request.run_id is not None
    opening = opening_header(job_type, request, request.run_id, now)
    header, created = api.lifecycle.open_run(opening)
    if not created and (
        header.backfill != opening.backfill or header.requested_clients != opening.requested_clients
    ):
        request_id = opening.backfill.request_id if opening.backfill else None
        raise ApiError(409, f"requestId {request_id} names another backfill ({header.run_id})")
    return header
