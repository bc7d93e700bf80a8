"""The job-health page: job types x clients, from the config rows and the last few runs.

Served by the API and drawn by the CLI; apart from ``jobkit.runs.client_health`` so the functions
that only keep failure streaks do not import the API's models at cold start.

Built to stay small and quick with 100,000 clients: it reads the failing clients' keys, the
rows it lists and a count, not every client. Those needing attention come from the Config
table's streak index (rows hold a failure streak only while it runs), longest streak first,
and the page is filled with the other clients in id order, a page of rows at a time. The
total is counted by DynamoDB (``Select=COUNT``): no row leaves the table, though the read
units are a full read's. Only the listed clients' rows of the recent runs are read, by key.
The open run's live totals are summed over its client rows only while it has few enough of
them; a bigger run shows the totals its clients have rolled up so far.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from jobkit.adapters.config import ClientConfig, ConfigStore, InvalidClientConfig
from jobkit.api.models import LIVE_CLIENT_ROWS, RunOut
from jobkit.api.visibility import RunsSeen
from jobkit.runs.models import (
    FINAL_STATUSES,
    ClientRun,
    ClientStatus,
    RunHeader,
    RunStatus,
    processed_ratio,
)

DEFAULT_CLIENTS = 50
_MAX_PAGE_ROWS = 1000  # rows per Query when filling the page
RECENT_RUNS = 5


class ClientHealthOut(BaseModel):
    client_id: str
    enabled: bool
    pilot: bool
    streak: int
    recent: list[str] = Field(description="The client's result in recent runs, newest first.")
    ratio: float | None = Field(
        None, description="processed / received (%) in its last finished run"
    )
    problem: str | None = None


class JobHealthOut(BaseModel):
    job_type: str
    schedule: str
    health: str
    last_run_id: str | None
    open_run: RunOut | None = Field(
        None,
        description=(
            "The run in progress. Its counts are live (summed over its client rows) for a run"
            f" of up to {LIVE_CLIENT_ROWS} clients; for a bigger one they are the totals its"
            " clients have rolled up as they closed. Client rows are not included."
        ),
    )
    recent_runs: list[str] = []
    clients_total: int = Field(description="Clients configured (matching the filter, if any).")
    clients_needing_attention: int = Field(
        description=(
            "Of those, clients with a failure streak (an invalid configuration fails each run"
            " it is planned in)."
        )
    )
    clients: list[ClientHealthOut] = Field(
        description=(
            "A page of them: those needing attention first, longest streak first, then the"
            " others by client id."
        )
    )


class HealthOut(BaseModel):
    generated_at: datetime
    dlq_depth: int | None = Field(
        description=(
            "Messages in the work DLQ. It is shared by every job type: null for a key limited"
            " to some of them."
        )
    )
    jobs: list[JobHealthOut]


def job_status_health(status: RunStatus | None) -> str:
    if status is None:
        return "unknown"
    return {
        RunStatus.SUCCEEDED: "healthy",
        RunStatus.COMPLETED_WITH_ERRORS: "degraded",
        RunStatus.FAILED: "failing",
    }.get(status, "running")


class ClientsShown(BaseModel):
    """Which clients the page is about: those whose id starts with ``prefix``, and of
    those, when ``only`` is given, only these (a key limited to some clients)."""

    prefix: str = ""
    only: frozenset[str] | None = None


def build_health(
    schedules: dict[str, str],
    configs: ConfigStore,
    runs: RunsSeen,
    dlq_depth: int | None,
    *,
    limit: int = DEFAULT_CLIENTS,
    shown: ClientsShown | None = None,
) -> HealthOut:
    """Job types x clients: per job type, up to ``limit`` of the clients ``shown``, those
    needing attention first, with their recent results."""
    shown = shown or ClientsShown()
    jobs = [
        _job_health(job_type, schedule, configs, runs, limit, shown)
        for job_type, schedule in sorted(schedules.items())
    ]
    return HealthOut(generated_at=datetime.now(UTC), dlq_depth=dlq_depth, jobs=jobs)


def _job_health(
    job_type: str,
    schedule: str,
    configs: ConfigStore,
    runs: RunsSeen,
    limit: int,
    shown: ClientsShown,
) -> JobHealthOut:
    headers = runs.recent_runs(job_type, RECENT_RUNS)
    if shown.only is None:
        total = configs.count(job_type, shown.prefix)
        attention, listed = _attention_first(configs, job_type, limit, shown.prefix)
    else:
        total, attention, listed = _only_these(configs, job_type, limit, shown)
    _add_recent(listed, headers, runs)
    open_header = next((h for h in headers if h.status not in FINAL_STATUSES), None)
    return JobHealthOut(
        job_type=job_type,
        schedule=schedule,
        health=job_status_health(headers[0].status if headers else None),
        last_run_id=headers[0].run_id if headers else None,
        open_run=runs.run_out(open_header, client_rows=0) if open_header else None,
        recent_runs=[h.status.value for h in headers],
        clients_total=total,
        clients_needing_attention=attention,
        clients=listed,
    )


def _attention_first(
    configs: ConfigStore, job_type: str, limit: int, client_prefix: str
) -> tuple[int, list[ClientHealthOut]]:
    """How many clients need attention, and a page of ``limit``: those first, longest
    streak first, then the others by id."""
    streaking = sorted(configs.streaks(job_type, client_prefix), key=lambda s: (-s[1], s[0]))
    listed = _streaking_clients(configs, job_type, streaking, limit)
    if len(listed) < limit:
        # Every client with a streak is listed by now: the rest are the others, by id.
        skip = {client_id for client_id, _ in streaking}
        listed += _other_clients(configs, job_type, client_prefix, skip, limit - len(listed))
    return len(streaking), listed


def _only_these(
    configs: ConfigStore, job_type: str, limit: int, shown: ClientsShown
) -> tuple[int, int, list[ClientHealthOut]]:
    """A few named clients (a key's): their rows by key. How many are configured, how many
    need attention, and a page of them, those first, longest streak first, then by id."""
    wanted = sorted(c for c in shown.only or () if c.startswith(shown.prefix))
    found = configs.get_many(job_type, wanted)
    clients = sorted((_client(config) for config in found.values()), key=_attention_order)
    return len(clients), sum(c.streak > 0 for c in clients), clients[:limit]


def _attention_order(client: ClientHealthOut) -> tuple[bool, int, str]:
    return (client.streak == 0, -client.streak, client.client_id)


def _streaking_clients(
    configs: ConfigStore, job_type: str, streaking: list[tuple[str, int]], limit: int
) -> list[ClientHealthOut]:
    """Their rows by key, a page at a time: a row deleted since the index was written is
    skipped and the next failing client takes its place."""
    listed: list[ClientHealthOut] = []
    for start in range(0, len(streaking), limit):
        if len(listed) >= limit:
            break
        chunk = streaking[start : start + limit]
        found = configs.get_many(job_type, [client_id for client_id, _ in chunk])
        listed += [_client(found[c], streak) for c, streak in chunk if c in found]
    return listed[:limit]


def _other_clients(
    configs: ConfigStore, job_type: str, client_prefix: str, skip: set[str], wanted: int
) -> list[ClientHealthOut]:
    listed: list[ClientHealthOut] = []
    page_size = min(wanted + len(skip), _MAX_PAGE_ROWS)
    for config in configs.first_clients(job_type, client_prefix, page_size=page_size):
        if config.client_id not in skip:
            listed.append(_client(config))
            if len(listed) == wanted:
                break
    return listed


def _client(
    config: ClientConfig | InvalidClientConfig, streak: int | None = None
) -> ClientHealthOut:
    """A client's line. ``streak``: the index's, which ranked it; else the row's own."""
    if isinstance(config, InvalidClientConfig):
        return ClientHealthOut(
            client_id=config.client_id,
            enabled=False,
            pilot=False,
            streak=streak or 0,
            recent=[],
            problem=config.reason,
        )
    return ClientHealthOut(
        client_id=config.client_id,
        enabled=config.enabled,
        pilot=config.pilot,
        streak=config.failure_streak if streak is None else streak,
        recent=[],
    )


def _add_recent(
    listed: Sequence[ClientHealthOut], headers: Sequence[RunHeader], runs: RunsSeen
) -> None:
    """The listed clients' results in the recent runs (newest first) and last ratio: their
    own rows of each run, read by key."""
    ids = [client.client_id for client in listed]
    if not ids:
        return
    rows_by_run: list[dict[str, ClientRun]] = [runs.client_rows(h.run_id, ids) for h in headers]
    for client in listed:
        _recent(
            client, [rows[client.client_id] for rows in rows_by_run if client.client_id in rows]
        )


def _recent(client: ClientHealthOut, rows: list[ClientRun]) -> None:
    client.recent = [row.result for row in rows]
    # A client still running has received more than it processed so far: not a ratio.
    done = next((row for row in rows if row.status is ClientStatus.DONE), None)
    if done is not None:
        client.ratio = processed_ratio(done.received, done.processed)
