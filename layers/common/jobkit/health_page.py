"""The job-health page: job types x clients, from the config rows and the last few runs.

Served by the API and drawn by the CLI; apart from ``jobkit.health`` so the functions that
only keep failure streaks do not import the API's models at cold start.
"""

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from jobkit.api_models import RunOut
from jobkit.config import ConfigStore, InvalidClientConfig
from jobkit.runs import FINAL_STATUSES, RunStatus, RunStore, processed_ratio


class ClientHealthOut(BaseModel):
    client_id: str
    enabled: bool
    pilot: bool
    streak: int
    recent: list[str] = Field(description="The client's result in recent runs, newest first.")
    ratio: float | None = Field(None, description="processed / received (%) in its last run")
    problem: str | None = None


class JobHealthOut(BaseModel):
    job_type: str
    schedule: str
    health: str
    last_run_id: str | None
    open_run: RunOut | None = Field(None, description="The run in progress, with live counts.")
    recent_runs: list[str] = []
    clients: list[ClientHealthOut]


class HealthOut(BaseModel):
    generated_at: datetime
    dlq_depth: int
    jobs: list[JobHealthOut]


def job_status_health(status: RunStatus | None) -> str:
    if status is None:
        return "unknown"
    return {
        RunStatus.SUCCEEDED: "healthy",
        RunStatus.COMPLETED_WITH_ERRORS: "degraded",
        RunStatus.FAILED: "failing",
    }.get(status, "running")


def build_health(
    schedules: dict[str, str], configs: ConfigStore, runs: RunStore, dlq_depth: int, recent: int = 5
) -> HealthOut:
    """Job types x clients, from the config rows and the last few runs of each job type."""
    jobs = []
    for job_type, schedule in sorted(schedules.items()):
        headers = runs.recent_runs(job_type, limit=recent)
        views = [view for header in headers if (view := runs.view(header.run_id)) is not None]
        results: dict[str, list[str]] = {}
        ratios: dict[str, float] = {}
        for view in views:  # newest first
            for row in view.clients:
                results.setdefault(row.client_id, []).append(row.result)
                ratios.setdefault(row.client_id, processed_ratio(row.received, row.processed))
        clients = []
        for config in configs.clients(job_type):
            if isinstance(config, InvalidClientConfig):
                clients.append(
                    ClientHealthOut(
                        client_id=config.client_id,
                        enabled=False,
                        pilot=False,
                        streak=0,
                        recent=results.get(config.client_id, []),
                        problem=config.reason,
                    )
                )
                continue
            clients.append(
                ClientHealthOut(
                    client_id=config.client_id,
                    enabled=config.enabled,
                    pilot=config.pilot,
                    streak=config.failure_streak,
                    recent=results.get(config.client_id, []),
                    ratio=ratios.get(config.client_id),
                )
            )
        open_view = next((v for v in views if v.header.status not in FINAL_STATUSES), None)
        jobs.append(
            JobHealthOut(
                job_type=job_type,
                schedule=schedule,
                health=job_status_health(headers[0].status if headers else None),
                last_run_id=headers[0].run_id if headers else None,
                open_run=RunOut.of(open_view) if open_view else None,
                recent_runs=[h.status.value for h in headers],
                clients=clients,
            )
        )
    return HealthOut(generated_at=datetime.now(UTC), dlq_depth=dlq_depth, jobs=jobs)
