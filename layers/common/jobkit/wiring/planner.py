"""The planner Lambda, from its settings."""

from collections.abc import Callable

from jobkit.adapters.aws import invoke_async
from jobkit.pipeline.plan import Planner
from jobkit.pipeline.shard_range import ShardRanges, ShardRequest
from jobkit.settings import PlannerSettings
from jobkit.wiring.parts import Parts, build_retries


def build_planner(
    settings: PlannerSettings,
    parts: Parts,
    config_fields: Callable[[], frozenset[str]] = frozenset,
    launch_shard: Callable[[ShardRequest], None] | None = None,
) -> Planner:
    """``launch_shard``: how a run's next shard is started; by default, an asynchronous
    invocation of the planner itself."""

    def invoke_self(shard: ShardRequest) -> None:
        invoke_async(settings.function_name, shard.model_dump(mode="json"))

    return Planner(
        settings.job_type,
        parts.configs,
        parts.ledger.lifecycle,
        parts.queue,
        shards=parts.ledger.shards,
        ranges=ShardRanges(
            settings.job_type,
            parts.configs,
            parts.ledger.shards,
            launch_shard or invoke_self,
            settings.plan_shard_clients,
        ),
        circuits=parts.circuits,
        retries=build_retries(settings, parts.ledger.retry_state),
        config_fields=config_fields,
    )
