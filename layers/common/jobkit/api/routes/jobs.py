"""Job types: those the key may read, with schedule, last run and health."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.models import JobOut, RunOut
from jobkit.api.responses import documented
from jobkit.api.services import services
from jobkit.api.visibility import RunsSeen
from jobkit.ops.health_page import job_status_health

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


def _job(job_type: str, schedule: str, runs: RunsSeen) -> JobOut:
    last = next(iter(runs.recent_runs(job_type, limit=1)), None)
    return JobOut(
        job_type=job_type,
        schedule=schedule,
        last_run=RunOut.of_header(last) if last else None,
        health=job_status_health(last.status if last else None),
    )


@router.get("/jobs", responses=documented())
def list_jobs() -> list[JobOut]:
    """The job types the key may read."""
    key = caller(router.current_event)
    key.require(Scope.READ)
    api = services(router)
    runs = key.runs_seen(api.runs)
    return [_job(job, schedule, runs) for job, schedule in key.readable(api.planners).items()]
