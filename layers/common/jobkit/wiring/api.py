"""The runs API Lambda's services, from its settings, once per container. The Lambda and SQS
clients are made on first use: most requests need neither."""

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from jobkit.adapters.aws import dynamodb_table, invoke_async, secrets_client, sqs_client
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.records import WorkflowStore
from jobkit.api.services import Services
from jobkit.runs.ledger import open_ledger
from jobkit.settings import ApiSettings
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore

if TYPE_CHECKING:
    from jobkit.adapters.circuits import Circuits
    from jobkit.adapters.external import ExternalSystem
    from jobkit.domain.job import Job
    from jobkit.pipeline.dry_run import WindowCounter
    from jobkit.pipeline.preview import RulePreview


def queue_depth(queue_url: str) -> int:
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


class ProviderParts(NamedTuple):
    """The processor's way to the external system: each client's view of the container's one
    HTTP client (credentials, the provider's rate limit), and the clients' circuits. Built on
    first use, once, for every route that reads the external system."""

    external: Callable[[ClientConfig], "ExternalSystem"]
    circuits: "Circuits"


def build_provider_parts(settings: ApiSettings) -> ProviderParts:
    from jobkit.wiring.parts import build_circuits, build_connections

    return ProviderParts(build_connections(settings).for_client, build_circuits(settings))


def build_window_counter(
    settings: ApiSettings,
    jobs: Mapping[str, "Job[Any]"],
    configs: ConfigStore,
    provider: ProviderParts,
) -> "WindowCounter":
    """A backfill's dry run: the processor's way to the external system and a read-only view
    of its idempotency records."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from jobkit.adapters.aws import dynamodb_client
    from jobkit.pipeline.dry_run import ProcessedWork, WindowCounter
    from jobkit.pipeline.process import record_key_prefix

    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=dynamodb_client()
    )
    return WindowCounter(
        jobs,
        configs,
        provider.external,
        provider.circuits,
        ProcessedWork(persistence, record_key_prefix(settings.idempotency_key_prefix)),
    )


def build_services(
    settings: ApiSettings, dashboard_html: str, jobs: Mapping[str, "Job[Any]"]
) -> Services:
    ledger = open_ledger(dynamodb_table(settings.runs_table))
    subscriptions = SubscriptionStore(
        dynamodb_table(settings.subscriptions_table),
        secrets_client(),
        settings.webhook_secret_prefix,
    )
    configs = ConfigStore(dynamodb_table(settings.config_table))
    workflow = WorkflowStore(dynamodb_table(settings.records_table))
    provider = functools.cache(lambda: build_provider_parts(settings))
    return Services(
        configs=configs,
        lifecycle=ledger.lifecycle,
        runs=ledger.queries,
        workflow=workflow,
        subscriptions=subscriptions,
        deliveries=DeliveryLog(dynamodb_table(settings.deliveries_table)),
        planners=settings.planners,
        invoke_async=invoke_async,
        dlq_depth=lambda: queue_depth(settings.work_dlq_url),
        dashboard_html=dashboard_html,
        config_fields=lambda job_type: jobs[job_type].config_fields,
        windowed=lambda job_type: jobs[job_type].windowed,
        window_counter=functools.cache(
            lambda: build_window_counter(settings, jobs, configs, provider())
        ),
        rule_preview=functools.cache(lambda: _rule_preview(jobs, configs, provider(), workflow)),
        is_local=settings.is_local,
        allow_loopback_webhooks=settings.allow_loopback_webhooks,
    )


def _rule_preview(
    jobs: Mapping[str, "Job[Any]"],
    configs: ConfigStore,
    provider: ProviderParts,
    workflow: WorkflowStore,
) -> "RulePreview":
    """A preview of the rules: the processor's way to the external system, and a read-only
    view of the platform's records."""
    from jobkit.pipeline.preview import RulePreview

    return RulePreview(jobs, configs, provider.external, provider.circuits, workflow)
