"""Builds the shared resilience parts from settings, once per container, the same way in every
function: circuits, client retries, and the connections to the external system."""

from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    CircuitBreakerDynamoDBPersistence,
)

from jobkit.aws import dynamodb_client, dynamodb_resource, scheduler_client
from jobkit.chaos import NO_CHAOS, Chaos
from jobkit.circuits import Circuits
from jobkit.credentials import CredentialSource
from jobkit.external import Connections, build_http_client
from jobkit.ratelimit import TokenBucket
from jobkit.retries import ClientRetries, RetryPolicy, RetryScheduler
from jobkit.runs import RunStore
from jobkit.settings import CircuitSettings, ExternalSettings, RetrySettings


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
    return Chaos(dynamodb_resource().Table(control_table)) if enabled else NO_CHAOS


def build_retries(settings: RetrySettings, runs: RunStore) -> ClientRetries:
    return ClientRetries(
        runs,
        RetryScheduler(
            scheduler_client(),
            settings.retry_function_arn,
            settings.retry_role_arn,
            settings.retry_schedule_group,
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
    bucket = TokenBucket(
        dynamodb_resource().Table(settings.control_table),
        provider_name(settings.external_base_url),
        rate=settings.external_rate_per_second,
        burst=settings.external_rate_burst,
    )
    http = build_http_client(
        settings.external_base_url,
        settings.external_timeout_seconds,
        settings.external_max_attempts,
        bucket,
    )
    return Connections(http, CredentialSource(settings.credentials_secret_prefix))
