"""The job-health page: job types x clients, from the config rows and the last few runs.

Served by the API and drawn by the CLI; apart from ``jobkit.runs.client_health`` so the functions
that only keep failure streaks do not import the API's models at cold start.

Built to stay small and quick with 100,000 clients: it reads the failing and stale clients'
keys, the rows it lists and a count, not every client. Those needing attention come from the
Config table's streak index (rows hold a failure streak only while it runs), longest streak
first, then from its stale index (rows sorted by when they go stale), longest stale first;
the page is filled with the other clients in id order, a page of rows at a time. The
total is counted by DynamoDB (``Select=COUNT``): no row leaves the table, though the read
units are a full read's. Only the listed clients' rows of the recent runs are read, by key.
The open run's live totals are summed over its client rows only while it has few enough of
them; a bigger run shows the totals its clients have rolled up so far.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from jobkit.adapters.config import ClientConfig, InvalidClientConfig, epoch_minute
from jobkit.adapters.config_store import ConfigStore
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
    frequency_minutes: int | None = Field(None, description="Minutes between its scheduled syncs.")
    last_success_at: datetime | None = Field(
        None, description="When its last clean run started; null: none yet."
    )
    age_minutes: int | None = Field(
        None, description="Minutes since last_success_at; null: no clean run yet."
    )
    stale_after_minutes: int | None = Field(
        None, description="Its stale age: its own, or 3 times its frequency."
    )
    stale: bool = Field(
        False,
        description=(
            "Enabled, and no clean run for longer than its stale age (counted from when it"
            " was configured or enabled while it has none)."
        ),
    )


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
            " it is planned in) or stale."
        )
    )
    clients_stale: int = Field(0, description="Of those, the stale clients.")
    clients: list[ClientHealthOut] = Field(
        description=(
            "A page of them: those needing attention first (longest failure streak first,"
            " then the stale ones, longest stale first), then the others by client id."
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
    now = datetime.now(UTC)
    jobs = [
        _job_health(job_type, schedule, _Clients(configs, job_type, now), runs, limit, shown)
        for job_type, schedule in sorted(schedules.items())
    ]
    return HealthOut(generated_at=now, dlq_depth=dlq_depth, jobs=jobs)


@dataclass(frozen=True)
class _Clients:
    """One job type's client rows as the page reads them, and the time it judges them at."""

    configs: ConfigStore
    job_type: str
    now: datetime

    def line(
        self, config: ClientConfig | InvalidClientConfig, streak: int | None = None
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
        success = config.last_success_at
        return ClientHealthOut(
            client_id=config.client_id,
            enabled=config.enabled,
            pilot=config.pilot,
            streak=config.failure_streak if streak is None else streak,
            recent=[],
            frequency_minutes=config.frequency_minutes,
            last_success_at=success,
            age_minutes=None if success is None else epoch_minute(self.now) - epoch_minute(success),
            stale_after_minutes=config.stale_after,
            stale=config.is_stale(self.now),
        )

    def lines(self, client_ids: Sequence[str], streaks: Mapping[str, int]) -> list[ClientHealthOut]:
        """These clients' lines, read by key, in this order: a row deleted since an index
        was written is left out."""
        found = self.configs.get_many(self.job_type, list(client_ids))
        return [self.line(found[c], streaks.get(c)) for c in client_ids if c in found]


def _job_health(
    job_type: str,
    schedule: str,
    clients: _Clients,
    runs: RunsSeen,
    limit: int,
    shown: ClientsShown,
) -> JobHealthOut:
    headers = runs.recent_runs(job_type, RECENT_RUNS)
    if shown.only is None:
        total = clients.configs.count(job_type, shown.prefix)
        attention, stale, listed = _attention_first(clients, limit, shown.prefix)
    else:
        total, attention, stale, listed = _only_these(clients, limit, shown)
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
        clients_stale=stale,
        clients=listed,
    )


def _attention_first(
    clients: _Clients, limit: int, client_prefix: str
) -> tuple[int, int, list[ClientHealthOut]]:
    """How many clients need attention and how many are stale, and a page of ``limit``:
    those needing attention first (longest streak first, then longest stale), then the
    others by id."""
    configs, job_type = clients.configs, clients.job_type
    streaks = dict(configs.streaks(job_type, client_prefix))
    stale = list(configs.stale(job_type, clients.now, client_prefix))
    ranked = sorted(streaks, key=lambda c: (-streaks[c], c))
    ranked += [c for c in stale if c not in streaks]
    listed: list[ClientHealthOut] = []
    for start in range(0, len(ranked), limit):
        if len(listed) >= limit:
            break
        listed += clients.lines(ranked[start : start + limit], streaks)
    listed = listed[:limit]
    if len(listed) < limit:
        # Every client needing attention is listed by now: the rest are the others, by id.
        listed += _other_clients(clients, client_prefix, set(ranked), limit - len(listed))
    return len(ranked), len(stale), listed


def _only_these(
    clients: _Clients, limit: int, shown: ClientsShown
) -> tuple[int, int, int, list[ClientHealthOut]]:
    """A few named clients (a key's): their rows by key. How many are configured, need
    attention and are stale, and a page of them, in the page's order."""
    wanted = sorted(c for c in shown.only or () if c.startswith(shown.prefix))
    found = clients.configs.get_many(clients.job_type, wanted)
    lines = sorted((clients.line(config) for config in found.values()), key=_attention_order)
    attention = sum(c.streak > 0 or c.stale for c in lines)
    return len(lines), attention, sum(c.stale for c in lines), lines[:limit]


def _attention_order(client: ClientHealthOut) -> tuple[bool, bool, int, int, str]:
    return (
        client.streak == 0,
        not client.stale,
        -client.streak,
        -(client.age_minutes or 0),
        client.client_id,
    )


def _other_clients(
    clients: _Clients, client_prefix: str, skip: set[str], wanted: int
) -> list[ClientHealthOut]:
    listed: list[ClientHealthOut] = []
    page_size = min(wanted + len(skip), _MAX_PAGE_ROWS)
    rows = clients.configs.first_clients(clients.job_type, client_prefix, page_size=page_size)
    for config in rows:
        if config.client_id not in skip:
            listed.append(clients.line(config))
            if len(listed) == wanted:
                break
    return listed


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
