"""Webhook delivery worker: POSTs each delivery, signed, with backoff between attempts."""

from typing import Any

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_client, dynamodb_table, secrets_client, sqs_client
from jobkit.adapters.queue import DeadLetterQueue
from jobkit.observability import logger, metrics, tracer
from jobkit.settings import DeliverySettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.webhooks.delivery import DeliveryWorker, EndpointPacer, WorkerDeps
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore

settings = load_settings(DeliverySettings)


secrets = parameters.SecretsProvider(boto3_client=secrets_client())


def signing_secret(name: str) -> str:
    # Powertools Parameters caches it for five minutes across invocations.
    return str(secrets.get(name, max_age=300))


worker = DeliveryWorker(
    WorkerDeps(
        subscriptions=SubscriptionStore(
            dynamodb_table(settings.subscriptions_table),
            secrets_client(),
            settings.webhook_secret_prefix,
        ),
        log=DeliveryLog(dynamodb_table(settings.deliveries_table)),
        secret=signing_secret,
        http=httpx.Client(
            timeout=settings.timeout_seconds, headers={"user-agent": "jobkit-webhooks"}
        ),
        sqs=sqs_client(),
        queue_url=settings.webhook_queue_url,
        dead_letters=DeadLetterQueue(sqs_client, settings.webhook_dlq_url),
        persistence=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb_client()
        ),
        backoff_base=settings.backoff_base_seconds,
        backoff_cap=settings.backoff_max_seconds,
        pacer=EndpointPacer(dynamodb_table(settings.control_table)),
        post_timeout_seconds=settings.timeout_seconds,
    )
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(
        name="WebhookAttempts", unit=MetricUnit.Count, value=len(event.get("Records", []))
    )
    return worker.handle(event, context)
