"""The run ledger's records: a run's header, its client rows, item outcomes and page
snapshots, as the Runs table holds them.

Layout of the Runs table (partition ``run_id``, sort ``sk``):
- ``RUN``               the header: status, trigger, timings, totals, issues;
- ``CLIENT#<id>``       one row per client: its counters while the run is open; the index
                        ``by-client`` lists a client's runs of a job type, newest first;
- ``PAGESNAP#<env>``    what a page held when it was first fetched;
- ``PAGE#<envelope>``   one row per fetched page (marks its records as received, once);
- ``ITEM#<client>#<pack>`` one row per batch's item outcomes of a client (processed,
                        skipped, failed + reason: ``jobkit.runs.outcome_packs``), under its
                        client so one client's items are one range;
- ``RETRY#<client>#<n>`` one row per client-level retry that resumed the client.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobkit.domain.replay import BackfillSpec

HEADER = "RUN"


class RunStatus(StrEnum):
    PLANNING = "PLANNING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS, RunStatus.FAILED, RunStatus.CANCELLED}
)


class ClientStatus(StrEnum):
    RUNNING = "RUNNING"
    WAITING = "WAITING_RETRY"  # the client's work failed as a whole; a retry is scheduled
    DONE = "DONE"
    INVALID_CONFIG = "INVALID_CONFIG"


class Outcome(StrEnum):
    PROCESSED = "processed"
    SKIPPED = "skipped"
    FAILED = "failed"


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    CLI = "cli"
    BACKFILL = "backfill"


class Counted(BaseModel):
    """The counters (``COUNTERS``) a client row keeps and its run header sums."""

    model_config = ConfigDict(extra="ignore")

    received: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0
    ack_failed: int = 0


COUNTERS = tuple(Counted.model_fields)


class RunHeader(Counted):
    run_id: str
    job_type: str
    trigger: Trigger
    requested_by: str
    correlation_id: str
    status: RunStatus = RunStatus.PLANNING
    scheduled_for: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    clients: int = 0
    clients_done: int = 0
    clients_failed: int = 0
    not_due: int = 0  # clients a scheduled fire did not plan: their frequency had not passed
    issues: list[str] = Field(default_factory=list)
    # The clients a manual run named (none: every enabled client); a key limited to some
    # clients sees a run that names one of them before its client rows exist.
    requested_clients: list[str] = Field(default_factory=list)
    backfill: BackfillSpec | None = None  # a backfill run's window and mode


class ClientRun(Counted):
    client_id: str
    group_id: str = ""
    status: ClientStatus = ClientStatus.RUNNING
    pages_open: int = 0
    open_items: int = 0  # received less outcomes counted: reaches 0 or less at the end
    dead_pages: int = 0  # pages given up on (each also counts in dead_lettered)
    pages: int = 0
    error: str | None = None
    attempt: int = 0  # client-level retries so far
    next_retry_at: str | None = None
    last_error: str | None = None  # why the last attempt failed, while retries go on

    @property
    def result(self) -> str:
        if self.status is not ClientStatus.DONE:
            return self.status.value
        if self.error:
            return "FAILED"
        return "COMPLETED_WITH_ERRORS" if self.failed else "SUCCEEDED"


@dataclass(frozen=True)
class PageSnapshot:
    """What one page of a run contained the first time it was fetched."""

    record_ids: tuple[str, ...]
    next_cursor: str | None
    resume_at: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """The final outcome of one item of a run."""

    envelope_id: str
    outcome: Outcome
    record_id: str
    item_key: str
    reason: str = ""
    dead_lettered: bool = False


@dataclass(frozen=True)
class RunView:
    header: RunHeader
    clients: list[ClientRun]

    @property
    def live_totals(self) -> dict[str, int]:
        """Summed over the client rows: right while the run is open (the header's totals
        are rolled up as each client closes)."""
        return {name: sum(getattr(c, name) for c in self.clients) for name in COUNTERS}


class ItemRow(BaseModel):
    """An item outcome, as an outcome pack holds it (``jobkit.runs.outcome_packs``)."""

    # Built on first use: closing and the API read item outcomes; every function imports this.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    envelope_id: str
    client_id: str
    record_id: str
    item_key: str = ""
    outcome: Outcome
    reason: str = ""
    dead_lettered: bool = False
    at: datetime


def client_key(run_id: str, client_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "sk": f"CLIENT#{client_id}"}


def item_prefix(client_id: str) -> str:
    """The sort-key prefix of one client's item outcomes (client ids hold no ``#``)."""
    return f"ITEM#{client_id}#"


def client_runs_index_keys(header: "RunHeader", client_id: str) -> dict[str, str]:
    """A client row's keys in the ``by-client`` index: the client's runs of a job type,
    ordered by when they were created (the run id breaks ties)."""
    return {
        "client_job": f"{header.job_type}#{client_id}",
        "run_order": f"{header.created_at.isoformat()}#{header.run_id}",
    }


def processed_ratio(received: int, processed: int) -> float:
    """Percent of received records processed; a run that received nothing is healthy."""
    return 100.0 if received == 0 else 100.0 * processed / received


def final_status(header: RunHeader) -> RunStatus:
    troubled = header.failed > 0 or header.clients_failed > 0
    if not troubled:
        return RunStatus.SUCCEEDED
    if header.processed == 0:
        return RunStatus.FAILED
    return RunStatus.COMPLETED_WITH_ERRORS
