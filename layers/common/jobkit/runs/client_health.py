"""Client and job health: failure streaks on the config rows, ratios, and their metrics.

A client's run counts as failed when its part of the run failed outright (a page could not be
fetched, its configuration is invalid) or any of its records failed. Three in a row page the
team (the seed's rule); the streak resets on the next clean run.

The health page built from these (``jobkit.ops.health_page``) is kept apart: its API models are
needed by the API and the CLI only, not by every function that closes a client's run.
"""

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from jobkit.adapters.config_store import ConfigStore
from jobkit.observability import logger
from jobkit.runs.models import ClientRun, ClientStatus, RunHeader, Trigger, processed_ratio

RATIO_THRESHOLD = 95.0  # processed / received, percent, below which a job type is unhealthy
STREAK_THRESHOLD = 3


def client_failed(row: ClientRun) -> bool:
    return row.result in ("FAILED", ClientStatus.INVALID_CONFIG.value) or row.failed > 0


def ratio_unhealthy(received: int, processed: int) -> bool:
    return processed_ratio(received, processed) < RATIO_THRESHOLD


class ClientHealth:
    """Called when a client's part of a run closes: keeps its streak and publishes it, and
    keeps when it last succeeded and when a schedule last planned it."""

    def __init__(self, configs: ConfigStore) -> None:
        self._configs = configs

    def record(self, header: RunHeader, row: ClientRun) -> int | None:
        job_type = header.job_type
        failed = client_failed(row)
        # Kept as the client's run closes, not as it is planned: the run's rows already take
        # one write per client there, so planning costs no write on the Config table.
        scheduled = header.scheduled_for if header.trigger is Trigger.SCHEDULE else None
        streak = self._configs.record_result(
            job_type, row.client_id, failed, started=header.created_at, scheduled_for=scheduled
        )
        if streak is None:
            return None  # the client's configuration is gone: nothing to keep a streak on
        with single_metric(
            name="ClientFailureStreak",
            unit=MetricUnit.Count,
            value=streak,
            default_dimensions={"job_type": job_type},
        ) as metric:
            # A property, not a dimension: one metric per client would be unbounded cost.
            metric.add_metadata("client_id", row.client_id)
        if streak >= STREAK_THRESHOLD:
            logger.error(
                "client failing run after run",
                extra={"job_type": job_type, "client_id": row.client_id, "streak": streak},
            )
        return streak
