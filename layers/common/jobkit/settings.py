"""Typed settings: every function validates its environment once, at cold start."""

import os

from pydantic import BaseModel, ConfigDict, Field, Json


class _Env(BaseModel):
    # Built when a function loads its own settings, not at import: each function needs one
    # of these classes, and building all of them is a measurable share of every cold start.
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", defer_build=True)


class TableSettings(_Env):
    config_table: str = Field(alias="CONFIG_TABLE", min_length=1)
    runs_table: str = Field(alias="RUNS_TABLE", min_length=1)


class QueueSettings(_Env):
    work_queue_url: str = Field(alias="WORK_QUEUE_URL", min_length=1)
    # The backfills' lane (``jobkit.domain.replay``): a queue with its own, lower, cap.
    backfill_queue_url: str | None = Field(None, alias="BACKFILL_QUEUE_URL", min_length=1)
    # The chaos test's fault injection (duplicates, crashes): true on the local stack only.
    chaos_enabled: bool = Field(False, alias="CHAOS_ENABLED")


class CircuitSettings(_Env):
    # Circuit states and the provider's rate-limit bucket.
    control_table: str = Field(alias="CONTROL_TABLE", min_length=1)
    circuit_failure_threshold: int = Field(5, alias="CIRCUIT_FAILURE_THRESHOLD", ge=1)
    circuit_cooldown_seconds: int = Field(60, alias="CIRCUIT_COOLDOWN_SECONDS", ge=1)
    circuit_success_threshold: int = Field(2, alias="CIRCUIT_SUCCESS_THRESHOLD", ge=1)


class ExternalSettings(CircuitSettings):
    external_base_url: str = Field(alias="EXTERNAL_BASE_URL", min_length=1)
    external_timeout_seconds: float = Field(5.0, alias="EXTERNAL_TIMEOUT_SECONDS", gt=0)
    external_max_attempts: int = Field(3, alias="EXTERNAL_MAX_ATTEMPTS", ge=1, le=10)
    credentials_secret_prefix: str = Field(alias="CREDENTIALS_SECRET_PREFIX", min_length=1)
    # The provider's limit, shared by every container: requests per second, and burst.
    external_rate_per_second: float = Field(20.0, alias="EXTERNAL_RATE_PER_SECOND", gt=0)
    external_rate_burst: int = Field(40, alias="EXTERNAL_RATE_BURST", ge=1)


class RetrySettings(CircuitSettings):
    # The retry worker has no such variable (a function cannot name itself in the template):
    # it schedules its own next attempts at the ARN it was invoked by.
    retry_function_arn: str | None = Field(None, alias="RETRY_FUNCTION_ARN", min_length=1)
    retry_role_arn: str = Field(alias="RETRY_ROLE_ARN", min_length=1)
    # The stack's own schedule group: never "default", which every stack of the account shares.
    retry_schedule_group: str = Field(alias="RETRY_SCHEDULE_GROUP", min_length=1)
    # Where Scheduler puts a retry whose invoke failed every attempt.
    retry_dlq_arn: str | None = Field(None, alias="RETRY_DLQ_ARN", min_length=1)
    retry_base_seconds: int = Field(60, alias="RETRY_BASE_SECONDS", ge=1)
    retry_max_seconds: int = Field(3600, alias="RETRY_MAX_SECONDS", ge=1)
    retry_max_retries: int = Field(3, alias="RETRY_MAX_RETRIES", ge=0, le=20)


class PlannerSettings(TableSettings, QueueSettings, RetrySettings):
    job_type: str = Field(alias="JOB_TYPE", min_length=1)
    # Clients per planning shard: past it, the planner plans the rest in invocations of its
    # own (jobkit.runs.shards). 10,000 leave half the timeout spare at 512 MB.
    plan_shard_clients: int = Field(10_000, alias="PLAN_SHARD_CLIENTS", ge=1)
    # Set by Lambda: where the planner sends its next shards.
    function_name: str = Field("", alias="AWS_LAMBDA_FUNCTION_NAME")


class RetryWorkerSettings(TableSettings, QueueSettings, RetrySettings):
    pass


class ProbeSettings(TableSettings, ExternalSettings):
    pass


class RotationSettings(ExternalSettings):
    pass


class ProcessorSettings(TableSettings, QueueSettings, ExternalSettings, RetrySettings):
    records_table: str = Field(alias="RECORDS_TABLE", min_length=1)
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    work_dlq_url: str = Field(alias="WORK_DLQ_URL", min_length=1)
    # Must equal the queue's redrive maxReceiveCount: on that attempt we dead-letter
    # the item ourselves so it is counted on its run and carries its reason.
    max_receive_count: int = Field(5, alias="MAX_RECEIVE_COUNT", ge=1)
    # Stable prefix for idempotency keys: Powertools would otherwise derive it from the
    # function and module names, and a rename would silently drop deduplication.
    idempotency_key_prefix: str = Field("jobkit", alias="IDEMPOTENCY_KEY_PREFIX")
    # In-progress idempotency records expire after the invocation's remaining time;
    # completed ones are kept this long to absorb late redeliveries.
    idempotency_ttl_seconds: int = Field(7 * 24 * 3600, alias="IDEMPOTENCY_TTL_SECONDS", ge=60)
    # The time budget of an invocation (jobkit.pipeline.budget.TimeBudget): the most one external
    # call (a page's fetch, an acknowledgement) may take, retries and rate-limit waits
    # included, when its worst case as configured is longer; what one item's own AWS requests
    # and the settling of a batch are given. Checked against one attempt at cold start.
    external_call_budget_seconds: float = Field(10.0, alias="EXTERNAL_CALL_BUDGET_SECONDS", gt=0)
    item_reserve_seconds: float = Field(1.0, alias="ITEM_RESERVE_SECONDS", ge=0)
    settle_reserve_seconds: float = Field(3.0, alias="SETTLE_RESERVE_SECONDS", ge=0)


class AuthorizerSettings(_Env):
    keys_table: str = Field(alias="KEYS_TABLE", min_length=1)


class ApiSettings(TableSettings, ExternalSettings):
    records_table: str = Field(alias="RECORDS_TABLE", min_length=1)
    # A backfill's dry run reads the processor's idempotency records (ProcessorSettings').
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    idempotency_key_prefix: str = Field("jobkit", alias="IDEMPOTENCY_KEY_PREFIX")
    subscriptions_table: str = Field(alias="SUBSCRIPTIONS_TABLE", min_length=1)
    deliveries_table: str = Field(alias="DELIVERIES_TABLE", min_length=1)
    webhook_secret_prefix: str = Field(alias="WEBHOOK_SECRET_PREFIX", min_length=1)
    # Plain-http receivers on loopback are for the local stack only.
    allow_loopback_webhooks: bool = Field(False, alias="ALLOW_LOOPBACK_WEBHOOKS")
    # The template's Environment: the local stack serves the API under its own URL layout.
    environment: str = Field("aws", alias="JOBKIT_ENVIRONMENT", pattern="^(aws|local)$")

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    work_dlq_url: str = Field(alias="WORK_DLQ_URL", min_length=1)
    # Job type -> {"function": planner name, "schedule": expression}, written by the template.
    planners: Json[dict[str, dict[str, str]]] = Field(alias="PLANNERS")


class MatcherSettings(_Env):
    subscriptions_table: str = Field(alias="SUBSCRIPTIONS_TABLE", min_length=1)
    webhook_queue_url: str = Field(alias="WEBHOOK_QUEUE_URL", min_length=1)
    webhook_secret_prefix: str = Field(alias="WEBHOOK_SECRET_PREFIX", min_length=1)


class DeliverySettings(MatcherSettings):
    deliveries_table: str = Field(alias="DELIVERIES_TABLE", min_length=1)
    webhook_dlq_url: str = Field(alias="WEBHOOK_DLQ_URL", min_length=1)
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    # Each endpoint's pace, shared by every container (token buckets).
    control_table: str = Field(alias="CONTROL_TABLE", min_length=1)
    timeout_seconds: float = Field(5.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0)
    backoff_base_seconds: float = Field(30.0, alias="WEBHOOK_BACKOFF_BASE_SECONDS", gt=0)
    backoff_max_seconds: float = Field(3600.0, alias="WEBHOOK_BACKOFF_MAX_SECONDS", gt=0)
    # How long a container keeps a subscription's signing secrets (``wiring.webhooks``).
    secret_cache_seconds: int = Field(60, alias="WEBHOOK_SIGNING_CACHE_SECONDS", ge=0, le=300)
    # Receivers on loopback (the local stack's test receivers) are delivered to only there.
    allow_loopback_webhooks: bool = Field(False, alias="ALLOW_LOOPBACK_WEBHOOKS")


def load_settings[SettingsT: BaseModel](model: type[SettingsT]) -> SettingsT:
    """Validate the process environment against a settings model."""
    return model.model_validate(dict(os.environ))
