"""The webhook matcher and delivery worker Lambdas, from their settings."""

import httpx
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from jobkit.adapters.aws import dynamodb_client, dynamodb_table, secrets_client, sqs_client
from jobkit.adapters.queue import DeadLetterQueue, WorkQueue
from jobkit.settings import DeliverySettings, MatcherSettings
from jobkit.webhooks.delivery import DeliveryWorker, EndpointPacer, WorkerDeps
from jobkit.webhooks.matcher import Matcher
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore


def subscription_store(table: str, secret_prefix: str) -> SubscriptionStore:
    return SubscriptionStore(dynamodb_table(table), secrets_client(), secret_prefix)


def build_matcher(settings: MatcherSettings) -> Matcher:
    subscriptions = subscription_store(settings.subscriptions_table, settings.webhook_secret_prefix)
    return Matcher(subscriptions, WorkQueue(sqs_client, settings.webhook_queue_url))


def build_delivery_worker(settings: DeliverySettings) -> DeliveryWorker:
    secrets = parameters.SecretsProvider(boto3_client=secrets_client())

    def signing_secret(name: str) -> str:
        # Powertools Parameters caches it across invocations: a rotated secret signs once the
        # cache expires (a minute on AWS), while the old one signs through its grace period.
        return str(secrets.get(name, max_age=settings.secret_cache_seconds))

    return DeliveryWorker(
        WorkerDeps(
            subscriptions=subscription_store(
                settings.subscriptions_table, settings.webhook_secret_prefix
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
            allow_loopback=settings.allow_loopback_webhooks,
        )
    )
