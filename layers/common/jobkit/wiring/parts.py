"""The parts several Lambdas build the same way, once per container: configuration, the run
ledger, the work queue, circuits, fault injection, client retries and the connections to the
external system.

What a function needs on every invocation is built at cold start; what only some paths need
(the HTTP client, the Scheduler and Secrets Manager clients) is built on its first use, once,
and kept for the container's life.
"""

from functools import partial
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    CircuitBreakerDynamoDBPersistence,
)

from jobkit.adapters.aws import dynamodb_client, dynamodb_table, scheduler_client, sqs_client
from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.credentials import CredentialSource
from jobkit.adapters.external import Connections
from jobkit.adapters.queue import WorkQueue
from jobkit.adapters.ratelimit import TokenBucket
from jobkit.pipeline.retry import ClientRetries, RetryPolicy, RetryScheduler
from jobkit.runs.client_health import ClientHealth
from jobkit.runs.ledger import Ledger, open_ledger
from jobkit.runs.retry_state import ClientRetryState
from jobkit.settings import (
    CircuitSettings,
    ExternalSettings,
    PlannerSettings,
    ProcessorSettings,
    RetrySettings,
    RetryWorkerSettings,
    TableSettings,
)
from jobkit.tooling.chaos import NO_CHAOS, Chaos

if TYPE_CHECKING:
    import httpx


class Parts(NamedTuple):
    """What the planner, the processor and the retry worker share, built the same way."""

    configs: ConfigStore
    ledger: Ledger
    queue: WorkQueue
    circuits: Circuits
    chaos: Chaos


def build_parts(settings: PlannerSettings | ProcessorSettings | RetryWorkerSettings) -> Parts:
    chaos = build_chaos(settings.control_table, settings.chaos_enabled)
    configs = ConfigStore(dynamodb_table(settings.config_table))
    return Parts(
        configs=configs,
        ledger=build_ledger(settings, configs),
        queue=WorkQueue(sqs_client, settings.work_queue_url, chaos, settings.backfill_queue_url),
        circuits=build_circuits(settings),
        chaos=chaos,
    )


def build_circuits(settings: CircuitSettings) -> Circuits:
    return Circuits(
        CircuitBreakerDynamoDBPersistence(
            table_name=settings.control_table,
            boto3_client=dynamodb_client(),
        ),
        failure_threshold=settings.circuit_failure_threshold,
        cooldown_seconds=settings.circuit_cooldown_seconds,
        success_threshold=settings.circuit_success_threshold,
    )


def build_chaos(control_table: str, enabled: bool) -> Chaos:
    return Chaos(dynamodb_table(control_table)) if enabled else NO_CHAOS


def build_ledger(settings: TableSettings, configs: ConfigStore) -> Ledger:
    """The run ledger, each closed client told to its health bookkeeping."""
    return open_ledger(dynamodb_table(settings.runs_table), ClientHealth(configs).record)


def build_retries(
    settings: RetrySettings, runs: ClientRetryState, target_arn: str | None = None
) -> ClientRetries:
    """``target_arn`` is the retry worker's, when the settings cannot say it (the worker's own
    invocations: it reschedules itself)."""
    target = target_arn or settings.retry_function_arn
    if not target:
        raise ValueError("the retry worker's ARN is needed: RETRY_FUNCTION_ARN or target_arn")
    return ClientRetries(
        runs,
        RetryScheduler(
            scheduler_client,  # the client on the first retry: most invocations schedule none
            target,
            settings.retry_role_arn,
            settings.retry_schedule_group,
            settings.retry_dlq_arn,
        ),
        RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            max_retries=settings.retry_max_retries,
        ),
    )


def provider_name(base_url: str) -> str:
    """The rate limit is the provider's: one bucket per host, whatever the path."""
    return urlsplit(base_url).netloc or base_url


def build_connections(settings: ExternalSettings) -> Connections:
    return Connections(
        partial(_http_client, settings), CredentialSource(settings.credentials_secret_prefix)
    )


def _http_client(settings: ExternalSettings) -> "httpx.Client":
    # Imported on the first external call, not at cold start: httpx, its retries and its TLS
    # context are a large share of an import that many invocations never need.
    from jobkit.adapters.http_client import build_http_client

    bucket = TokenBucket(
        dynamodb_table(settings.control_table),
        provider_name(settings.external_base_url),
        rate=settings.external_rate_per_second,
        burst=settings.external_rate_burst,
    )
    return build_http_client(
        settings.external_base_url,
        settings.external_timeout_seconds,
        settings.external_max_attempts,
        bucket,
    )
