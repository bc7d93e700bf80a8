"""The planner Lambda, from its settings."""

from collections.abc import Callable

from jobkit.pipeline.plan import Planner
from jobkit.settings import PlannerSettings
from jobkit.wiring.parts import Parts, build_retries


def build_planner(
    settings: PlannerSettings,
    parts: Parts,
    config_fields: Callable[[], frozenset[str]] = frozenset,
) -> Planner:
    return Planner(
        settings.job_type,
        parts.configs,
        parts.ledger.lifecycle,
        parts.queue,
        circuits=parts.circuits,
        retries=build_retries(settings, parts.ledger.retry_state),
        config_fields=config_fields,
    )
