"""Webhook matcher: an EventBridge rule hands it each domain event; it enqueues deliveries."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.aws import dynamodb_resource, secrets_client, sqs_client
from jobkit.delivery import Matcher
from jobkit.events import StatusChanged
from jobkit.observability import log_request_counts, logger, metrics, tracer
from jobkit.queue import WorkQueue
from jobkit.settings import MatcherSettings, load_settings
from jobkit.subscriptions import SubscriptionStore

settings = load_settings(MatcherSettings)
matcher = Matcher(
    SubscriptionStore(
        dynamodb_resource().Table(settings.subscriptions_table),
        secrets_client(),
        settings.webhook_secret_prefix,
    ),
    WorkQueue(sqs_client(), settings.webhook_queue_url),
)


@logger.inject_lambda_context(correlation_id_path="detail.correlation_id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    domain_event = StatusChanged.model_validate(event["detail"])
    deliveries = matcher.match(domain_event)
    metrics.add_metric(name="WebhookDeliveriesEnqueued", unit=MetricUnit.Count, value=deliveries)
    return {"event_id": domain_event.event_id, "deliveries": deliveries}
