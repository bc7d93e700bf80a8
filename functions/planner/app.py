"""Planner Lambda, one per job type: open a run and enqueue a page item per due client, a
shard of clients per invocation (the next shards in invocations it starts itself)."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.observability import metrics
from jobkit.pipeline.plan_request import parse_plan_request
from jobkit.pipeline.shard_range import ShardRequest
from jobkit.runs.models import Trigger
from jobkit.settings import PlannerSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.parts import build_parts
from jobkit.wiring.planner import build_planner
from jobs import JOBS

settings = load_settings(PlannerSettings)
planner = build_planner(
    settings, build_parts(settings), lambda: JOBS[settings.job_type].config_fields
)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_plan_request(event)
    # When this invocation ends at the latest: until then, no other attempt plans its shard.
    ends_by = datetime.now(UTC) + timedelta(milliseconds=context.get_remaining_time_in_millis())
    if isinstance(request, ShardRequest):
        planner.plan_shard(request, ends_by)
        return {"run_id": request.run_id, "shard": request.shard}
    header = planner.plan(request, ends_by)
    metrics.add_dimension(name="job_type", value=settings.job_type)
    metrics.add_metric(name="RunsPlanned", unit=MetricUnit.Count, value=1)
    if request.trigger is Trigger.SCHEDULE:
        # Each fire counts them: the alarm sees a client that silently stopped syncing.
        metrics.add_metric(name="ClientsStale", unit=MetricUnit.Count, value=planner.stale_count())
        # A run that a lost shard left PLANNING would never close: the alarm sees it.
        stuck = planner.stuck_planning_count()
        metrics.add_metric(name="RunsStuckPlanning", unit=MetricUnit.Count, value=stuck)
    return {"run_id": header.run_id, "status": header.status.value, "clients": header.clients}
