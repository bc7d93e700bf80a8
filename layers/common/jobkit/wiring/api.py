"""The runs API Lambda's services, from its settings, once per container. The Lambda and SQS
clients are made on first use: most requests need neither."""

import json
from collections.abc import Callable
from typing import Any

from jobkit.adapters.aws import dynamodb_table, lambda_client, secrets_client, sqs_client
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.records import WorkflowStore
from jobkit.api.services import Services
from jobkit.runs.ledger import open_ledger
from jobkit.settings import ApiSettings
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore


def invoke_async(function_name: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    lambda_client().invoke(FunctionName=function_name, InvocationType="Event", Payload=body)


def queue_depth(queue_url: str) -> int:
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def build_services(
    settings: ApiSettings,
    dashboard_html: str,
    config_fields: Callable[[str], frozenset[str]],
) -> Services:
    ledger = open_ledger(dynamodb_table(settings.runs_table))
    subscriptions = SubscriptionStore(
        dynamodb_table(settings.subscriptions_table),
        secrets_client(),
        settings.webhook_secret_prefix,
    )
    return Services(
        configs=ConfigStore(dynamodb_table(settings.config_table)),
        lifecycle=ledger.lifecycle,
        runs=ledger.queries,
        workflow=WorkflowStore(dynamodb_table(settings.records_table)),
        subscriptions=subscriptions,
        deliveries=DeliveryLog(dynamodb_table(settings.deliveries_table)),
        planners=settings.planners,
        invoke_async=invoke_async,
        dlq_depth=lambda: queue_depth(settings.work_dlq_url),
        dashboard_html=dashboard_html,
        config_fields=config_fields,
        is_local=settings.is_local,
        allow_loopback_webhooks=settings.allow_loopback_webhooks,
    )
