"""Planner Lambda, one per job type: open a run and enqueue a page item per enabled client."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_table, sqs_client
from jobkit.adapters.config import ConfigStore
from jobkit.adapters.queue import WorkQueue
from jobkit.observability import logger, metrics, tracer
from jobkit.pipeline.plan import Planner, parse_plan_request
from jobkit.settings import PlannerSettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.wiring import build_chaos, build_circuits, build_ledger, build_retries

settings = load_settings(PlannerSettings)
chaos = build_chaos(settings.control_table, settings.chaos_enabled)
configs = ConfigStore(dynamodb_table(settings.config_table))
ledger = build_ledger(settings, configs)
planner = Planner(
    settings.job_type,
    configs,
    ledger.lifecycle,
    WorkQueue(sqs_client, settings.work_queue_url, chaos),
    circuits=build_circuits(settings),
    retries=build_retries(settings, ledger.retry_state),
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_plan_request(event)
    header = planner.plan(request)
    metrics.add_dimension(name="job_type", value=settings.job_type)
    metrics.add_metric(name="RunsPlanned", unit=MetricUnit.Count, value=1)
    return {"run_id": header.run_id, "status": header.status.value, "clients": header.clients}
