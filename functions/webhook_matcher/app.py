"""Webhook matcher: the bus puts domain events on its queue; it enqueues deliveries, a batch
at a time."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.observability import logger, metrics, tracer
from jobkit.settings import MatcherSettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.wiring.webhooks import build_matcher

settings = load_settings(MatcherSettings)
matcher = build_matcher(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(
        name="DomainEventsMatched", unit=MetricUnit.Count, value=len(event.get("Records", []))
    )
    return matcher.handle(event, context)
