"""Retry worker Lambda: a one-off schedule hands it a client whose work failed as a whole."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_table, sqs_client
from jobkit.adapters.config import ConfigStore
from jobkit.adapters.queue import WorkQueue
from jobkit.observability import logger, metrics, tracer
from jobkit.pipeline.retry import RetryRequest, RetryWorker
from jobkit.settings import RetryWorkerSettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.wiring import build_chaos, build_circuits, build_ledger, build_retries

settings = load_settings(RetryWorkerSettings)
chaos = build_chaos(settings.control_table, settings.chaos_enabled)
configs = ConfigStore(dynamodb_table(settings.config_table))
retry_state = build_ledger(settings, configs).retry_state
queue = WorkQueue(sqs_client, settings.work_queue_url, chaos)
circuits = build_circuits(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RetryRequest.model_validate(event)
    logger.append_keys(run_id=request.run_id, client_id=request.client_id)
    # Its next attempts invoke this very function: the template cannot give a function its
    # own ARN, the invocation can.
    retries = build_retries(settings, retry_state, target_arn=context.invoked_function_arn)
    worker = RetryWorker(retry_state, queue, circuits, retries)
    return {"result": worker.retry(request), "attempt": request.attempt}
