"""What every Lambda handler is wrapped in, in one place: the structured logger (with the
invocation's context), EMF metrics flushed at the end, the X-Ray trace, and, on the local
stack, the log line of the AWS requests it made."""

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.cold_start import resume_collection
from jobkit.observability import logger, metrics, tracer
from jobkit.tooling.request_log import log_request_counts

type Handler[R] = Callable[[dict[str, Any], LambdaContext], R]


def lambda_entry[R](
    correlation_id_path: str | None = None, with_metrics: bool = True
) -> Callable[[Handler[R]], Handler[R]]:
    """``correlation_id_path``: where the event carries the caller's correlation id (API
    Gateway's request id for the API); ``with_metrics``: False for a function that publishes
    none (the authorizer). Applied to the handler, it ends the init: garbage collection,
    paused since the handler module's first import (``jobkit.cold_start``), resumes."""
    resume_collection()

    def wrap(handler: Handler[R]) -> Handler[R]:
        wrapped: Any = log_request_counts(handler)
        wrapped = tracer.capture_lambda_handler(capture_response=False)(wrapped)
        if with_metrics:
            wrapped = metrics.log_metrics(wrapped)
        wrapped = logger.inject_lambda_context(
            correlation_id_path=correlation_id_path, clear_state=True
        )(wrapped)
        return cast(Handler[R], wrapped)

    return wrap
