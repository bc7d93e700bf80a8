"""What the routes use, built once per container by the API function and handed to the
routers through the resolver's context on every request."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router

from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.records import WorkflowStore
from jobkit.api.responses import ApiError
from jobkit.runs.lifecycle import RunLifecycle
from jobkit.runs.queries import RunQueries
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore

if TYPE_CHECKING:
    from jobkit.pipeline.dry_run import WindowCounter
    from jobkit.pipeline.preview import RulePreview


@dataclass(frozen=True)
class Services:
    configs: ConfigStore
    lifecycle: RunLifecycle
    runs: RunQueries
    workflow: WorkflowStore
    subscriptions: SubscriptionStore
    deliveries: DeliveryLog
    # Job type -> {"function": planner name, "schedule": expression}
    planners: Mapping[str, Mapping[str, str]]
    # Invoke a function asynchronously (function name, JSON payload)
    invoke_async: Callable[[str, dict[str, Any]], None]
    dlq_depth: Callable[[], int]
    dashboard_html: str
    # A job type's query fields (``Job.config_fields``): a client row may set no other.
    config_fields: Callable[[str], frozenset[str]]
    # Whether a job type's fetch takes a time window (``Job.windowed``): it can be backfilled.
    windowed: Callable[[str], bool]
    # A backfill's dry run, built on its first use: it reads the external system.
    window_counter: Callable[[], "WindowCounter"]
    # A preview of a job's rules, built on its first use: it reads the external system.
    rule_preview: Callable[[], "RulePreview"]
    is_local: bool = False
    allow_loopback_webhooks: bool = False

    def planner(self, job_type: str) -> Mapping[str, str]:
        planner = self.planners.get(job_type)
        if planner is None:
            raise ApiError(404, f"unknown job type {job_type!r}")
        return planner


def services(router: Router) -> Services:
    """The services of the request being answered (``jobkit.api.resolver.build_app``)."""
    return cast(Services, router.context["services"])
