"""Retry worker Lambda: a one-off schedule hands it a client whose work failed as a whole."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.observability import logger
from jobkit.pipeline.retry import RetryRequest
from jobkit.settings import RetryWorkerSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.parts import build_parts
from jobkit.wiring.retry_worker import build_retry_worker

settings = load_settings(RetryWorkerSettings)
parts = build_parts(settings)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RetryRequest.model_validate(event)
    logger.append_keys(run_id=request.run_id, client_id=request.client_id)
    # Its next attempts invoke this very function: the template cannot give a function its
    # own ARN, the invocation can.
    worker = build_retry_worker(settings, parts, context.invoked_function_arn)
    return {"result": worker.retry(request), "attempt": request.attempt}
