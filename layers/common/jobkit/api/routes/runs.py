"""Runs: start one (202 + Location), list a job type's, follow, cancel, page its rows."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import Caller, caller
from jobkit.api.models import ClientRunOut, ItemOut, Page, RunOut, StartRun
from jobkit.api.paging import Limit, Next, decode, encode, run_page_start
from jobkit.api.responses import ApiError, documented
from jobkit.api.services import services
from jobkit.api.urls import public_url
from jobkit.api.visibility import RunsSeen
from jobkit.observability import logger
from jobkit.runs.models import RunHeader, Trigger

if TYPE_CHECKING:
    from jobkit.pipeline.plan_request import PlanRequest

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


def _runs() -> RunsSeen:
    return caller(router.current_event).runs_seen(services(router).runs)


def _run(runs: RunsSeen, run_id: str, scope: Scope) -> RunHeader:
    return caller(router.current_event).run(runs, run_id, scope)


def _plan_request(job_type: str, who: Caller, body: StartRun, now: datetime) -> "PlanRequest":
    """The planner's own request, for a new run of the planner's own id."""
    # The planner's module loads here, not at each cold start: most requests start no run.
    from jobkit.pipeline.plan_request import PlanRequest, manual_run_id

    run_id = manual_run_id(job_type, now)
    return PlanRequest(
        trigger=Trigger.API,
        run_id=run_id,
        requested_by=f"key:{who.key_id}",
        client_ids=body.client_ids,
        dry_run=body.dry_run,
        correlation_id=router.current_event.request_context.request_id or run_id,
    )


def _open(job_type: str, request: "PlanRequest", now: datetime) -> RunHeader:
    """The run, open before its planner is invoked: the answer shows it, PLANNING."""
    from jobkit.pipeline.plan_request import opening_header  # loaded with _plan_request's

    assert request.run_id is not None
    header, _ = services(router).lifecycle.open_run(
        opening_header(job_type, request, request.run_id, now)
    )
    return header


@router.post(
    "/jobs/<job_type>/runs",
    responses=documented(202, "Run accepted"),
    description=(
        "Start a run by hand. It plans the enabled clients it names (clientIds), or every"
        " enabled client, whatever their frequency_minutes: only scheduled fires plan a"
        " client when it is due."
    ),
)
def start_run(job_type: str, body: Annotated[StartRun, Body()]) -> Response[RunOut]:
    api = services(router)
    planner = api.planner(job_type)
    who = caller(router.current_event)
    who.require(Scope.TRIGGER, job_type, body.client_ids or [])
    now = datetime.now(UTC)
    request = _plan_request(job_type, who, body, now)
    header = _open(job_type, request, now)
    api.invoke_async(planner["function"], request.model_dump(mode="json"))
    logger.info(
        "run requested",
        extra={
            "run_id": header.run_id,
            "job_type": job_type,
            "key_id": who.key_id,
            "dry_run": body.dry_run,
        },
    )
    location = public_url(router.current_event, f"/runs/{header.run_id}", api.is_local)
    return Response(
        status_code=202,
        content_type="application/json",
        body=RunOut.of_header(header),
        headers={"Location": location},
    )


@router.get("/jobs/<job_type>/runs", responses=documented())
def list_runs(job_type: str, limit: Limit = 20, next: Next = None) -> Page[RunOut]:
    services(router).planner(job_type)
    caller(router.current_event).require(Scope.READ, job_type)
    headers, last = _runs().runs_page(job_type, limit, decode(next))
    return Page[RunOut](items=[RunOut.of_header(h) for h in headers], next=encode(last))


@router.get("/runs/<run_id>", responses=documented())
def get_run(run_id: str) -> RunOut:
    runs = _runs()
    return runs.run_out(_run(runs, run_id, Scope.READ))


@router.delete("/runs/<run_id>", responses=documented(conflict="The run is already final"))
def cancel_run(run_id: str) -> RunOut:
    runs = _runs()
    header = _run(runs, run_id, Scope.TRIGGER)
    if not services(router).lifecycle.cancel(run_id):
        raise ApiError(409, f"run {run_id} is already {header.status.value}")
    cancelled = runs.header(run_id)
    assert cancelled is not None
    return runs.run_out(cancelled)


@router.get("/runs/<run_id>/clients", responses=documented())
def run_clients(run_id: str, limit: Limit = 50, next: Next = None) -> Page[ClientRunOut]:
    runs = _runs()
    _run(runs, run_id, Scope.READ)
    rows, last = runs.clients_page(run_id, limit, run_page_start(run_id, next))
    return Page[ClientRunOut](items=[ClientRunOut.of(row) for row in rows], next=encode(last))


@router.get("/runs/<run_id>/items", responses=documented())
def run_items(
    run_id: str,
    status: Annotated[str | None, Query(pattern="^(processed|skipped|failed)$")] = None,
    limit: Limit = 50,
    next: Next = None,
) -> Page[ItemOut]:
    runs = _runs()
    _run(runs, run_id, Scope.READ)
    rows, last = runs.items_page(run_id, status, limit, run_page_start(run_id, next))
    return Page[ItemOut](items=[ItemOut.of(row) for row in rows], next=encode(last))
