"""Bodies of the runs API, shared by the API function and the CLI (webhooks' in
``webhook_models``)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    create_model,
    field_validator,
)

from jobkit.adapters.config import QUERY_FIELDS, ClientConfig, ClientSettings, PlatformSettings
from jobkit.domain.envelope import Identifier
from jobkit.domain.replay import BackfillSpec, ReplayMode, TimeWindow, window_error
from jobkit.runs.models import COUNTERS, ClientRun, ItemRow, RunHeader, RunStatus, RunView
from jobkit.runs.queries import RunQueries

# Up to this many clients, a run's counts are summed live over its client rows; beyond it,
# reading every row on each request would outgrow API Gateway's 29 s (and the rows Lambda's
# 6 MB response), so a run shows the totals its clients rolled up as they closed.
LIVE_CLIENT_ROWS = 1000


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(StrictBody):
    client_ids: Annotated[list[Identifier], Field(max_length=1000)] | None = Field(
        None, alias="clientIds"
    )
    dry_run: StrictBool = Field(False, alias="dryRun")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StartBackfill(StrictBody):
    client_ids: Annotated[list[Identifier], Field(min_length=1, max_length=100)] = Field(
        alias="clientIds"
    )
    window_from: AwareDatetime = Field(alias="from", description="ISO 8601, with a zone.")
    window_to: AwareDatetime = Field(
        alias="to", description="ISO 8601, with a zone; after from, and not in the future."
    )
    mode: ReplayMode = Field(
        ReplayMode.MISSING,
        description=(
            "missing: only records whose version was never processed; all: every record in"
            " the window again, as a new generation (the job's rules decide anew)."
        ),
    )
    dry_run: StrictBool = Field(False, alias="dryRun")
    request_id: Identifier | None = Field(
        None,
        alias="requestId",
        description="The same request id is the same backfill: sent again, it starts nothing.",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("window_to")
    @classmethod
    def _a_past_window(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("window_from")
        if start is not None:
            refused = window_error(start, end, datetime.now(UTC))
            if refused is not None:
                raise ValueError(refused[1])
        return end

    def spec(self) -> BackfillSpec:
        return BackfillSpec(
            window=TimeWindow(start=self.window_from, end=self.window_to),
            mode=self.mode,
            request_id=self.request_id,
        )


class BackfillOut(BaseModel):
    window_from: datetime
    window_to: datetime
    mode: str
    request_id: str | None

    @classmethod
    def of(cls, spec: BackfillSpec) -> "BackfillOut":
        return cls(
            window_from=spec.window.start,
            window_to=spec.window.end,
            mode=spec.mode.value,
            request_id=spec.request_id,
        )


class BackfillClientCount(BaseModel):
    client_id: str
    in_window: int = Field(description="Records the external system has in the window.")
    already_processed: int = Field(description="Of those, whose work (in this mode) is done.")
    would_process: int
    complete: bool = Field(
        description="False when the window was too large to page in the answer's time: the"
        " counts are of the pages read."
    )
    error: str | None = Field(None, description="Why this client could not be counted.")


class BackfillDryRunOut(BaseModel):
    job_type: str
    mode: str
    window_from: datetime
    window_to: datetime
    clients: list[BackfillClientCount]


class PreviewRules(StrictBody):
    client_id: Identifier = Field(alias="clientId")
    limit: int = Field(20, ge=1, le=100, description="Records of the page shown, at most.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PreviewRowOut(BaseModel):
    record_id: str
    decision: str = Field(
        description="transition: the rules move the record (from_status -> to_status); skip:"
        " they leave it (reason says why, the guard's answer included); error: a run would"
        " dead-letter it (the record fails the job's model, naming the field, or is unknown"
        " to the platform), or the rules raised."
    )
    reason: str
    from_status: str | None = None
    to_status: str | None = None
    acknowledged: bool = Field(
        description="A run would hand it to the job's acknowledge (a job may acknowledge"
        " nothing, as sync-contacts' change feed does)."
    )


class PreviewOut(BaseModel):
    job_type: str
    client_id: str
    records: list[PreviewRowOut]
    more: bool = Field(description="The client has more records than those shown.")


class _Counters(BaseModel):
    """The run counters (jobkit.runs.ledger.COUNTERS), as the API shows them."""

    received: int
    processed: int
    failed: int
    skipped: int
    dead_lettered: int
    retries: int
    ack_failed: int


class Counts(_Counters):
    clients: int


class ClientRunOut(_Counters):
    client_id: str
    result: str
    error: str | None = None
    attempt: int = Field(0, description="Client-level retries so far.")
    next_retry_at: str | None = Field(None, description="While WAITING_RETRY: when.")
    last_error: str | None = Field(None, description="Why the last attempt failed.")

    @classmethod
    def of(cls, row: ClientRun) -> "ClientRunOut":
        counters = {name: getattr(row, name) for name in COUNTERS}
        return cls(
            client_id=row.client_id,
            result=row.result,
            error=row.error,
            attempt=row.attempt,
            next_retry_at=row.next_retry_at,
            last_error=row.last_error,
            **counters,
        )


class RunOut(BaseModel):
    run_id: str
    job_type: str
    status: str
    trigger: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: Counts
    issues: list[str]
    eta_seconds: float | None = Field(None, description="From the average item time so far.")
    scheduled_for: datetime | None = Field(
        None, description="A scheduled run's fire time, which due-ness and queries count from."
    )
    not_due: int = Field(
        0,
        description=(
            "Clients a scheduled fire did not plan: their frequency_minutes had not passed since"
            " the fire that last planned them. A run asked for by hand plans every client it"
            " names, or every enabled one, whatever their frequency."
        ),
    )
    backfill: BackfillOut | None = Field(None, description="A backfill's window and mode.")
    clients: list[ClientRunOut] = Field(
        [],
        description=(
            f"Per-client rows: every one for a run of up to {LIVE_CLIENT_ROWS} clients; for a"
            f" bigger run, the first {LIVE_CLIENT_ROWS} by client id. GET /runs/{{id}}/clients"
            " pages through them all."
        ),
    )

    @classmethod
    def of(cls, view: RunView, *, with_clients: bool = True) -> "RunOut":
        """Live: totals summed over the client rows, right while the run is open."""
        totals = view.live_totals
        clients = [ClientRunOut.of(c) for c in view.clients] if with_clients else []
        return cls._build(view.header, totals, clients)

    @classmethod
    def of_header(cls, header: RunHeader, clients: Sequence[ClientRun] = ()) -> "RunOut":
        """From the header alone: totals as rolled up so far (complete once it is final)."""
        totals = {name: getattr(header, name) for name in COUNTERS}
        return cls._build(header, totals, [ClientRunOut.of(c) for c in clients])

    @classmethod
    def _build(
        cls, header: RunHeader, totals: dict[str, int], clients: list[ClientRunOut]
    ) -> "RunOut":
        return cls(
            run_id=header.run_id,
            job_type=header.job_type,
            status=header.status.value,
            trigger=header.trigger.value,
            requested_by=header.requested_by,
            created_at=header.created_at,
            started_at=header.started_at,
            finished_at=header.finished_at,
            counts=Counts(clients=header.clients, **totals),
            issues=header.issues,
            eta_seconds=_eta(header, totals),
            scheduled_for=header.scheduled_for,
            not_due=header.not_due,
            backfill=BackfillOut.of(header.backfill) if header.backfill else None,
            clients=clients,
        )


def _eta(header: RunHeader, totals: dict[str, int]) -> float | None:
    if header.finished_at is not None or header.started_at is None:
        return None
    done = totals["processed"] + totals["skipped"] + totals["failed"]
    remaining = totals["received"] - done
    if done == 0 or remaining <= 0:
        return None
    elapsed = (datetime.now(UTC) - header.started_at).total_seconds()
    return round(elapsed / done * remaining, 1)


class ItemOut(BaseModel):
    envelope_id: str
    client_id: str
    record_id: str
    outcome: str
    reason: str
    at: datetime

    @classmethod
    def of(cls, row: ItemRow) -> "ItemOut":
        return cls(
            envelope_id=row.envelope_id,
            client_id=row.client_id,
            record_id=row.record_id,
            outcome=row.outcome.value,
            reason=row.reason,
            at=row.at,
        )


class Page[T](BaseModel):
    items: list[T]
    next: str | None = Field(None, description="Pass as ?next= for the following page.")


class JobOut(BaseModel):
    job_type: str
    schedule: str
    last_run: RunOut | None
    health: str = Field(description="healthy, degraded, failing or unknown, from the last run")


class ClientConfigIn(PlatformSettings):
    """A client's configuration, as written through the API (state fields are the platform's).
    Each job type has its own (``client_body``): these fields and the query fields it uses."""

    def to_config(self, job_type: str, client_id: str, created_by: str) -> ClientConfig:
        return ClientConfig(
            job_type=job_type, client_id=client_id, created_by=created_by, **self.model_dump()
        )


def client_body(job_type: str, uses: frozenset[str]) -> type[ClientConfigIn]:
    """The client body of one job type: the platform's fields and the query fields (script,
    days, year) its job uses. Any other is refused, and the document says which are whose."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in ClientSettings.model_fields.items()
        if name in uses and name in QUERY_FIELDS
    }
    camel = "".join(part.capitalize() for part in job_type.replace("_", "-").split("-"))
    return create_model(
        f"{camel}ClientIn",
        __base__=ClientConfigIn,
        __doc__=f"A {job_type} client, as written through the API.",
        **fields,
    )


class HistoryEntry(BaseModel):
    transition_id: str
    from_status: str
    to_status: str
    reason: str
    run_id: str
    occurred_at: datetime
    triggers: list[str] = []


class ErrorOut(BaseModel):
    error: str


def run_out(runs: RunQueries, header: RunHeader, client_rows: int) -> RunOut:
    """A run as the API shows it, read within bounds whatever its size: live counts and up to
    ``client_rows`` client rows for a run of at most LIVE_CLIENT_ROWS clients; otherwise (and
    while it is still planning, its client count not yet known) the rolled-up totals and its
    first ``client_rows`` client rows by id."""
    if header.status is RunStatus.PLANNING or header.clients > LIVE_CLIENT_ROWS:
        rows = runs.clients_page(header.run_id, client_rows, None)[0] if client_rows else []
        return RunOut.of_header(header, rows)
    view = runs.view(header.run_id)
    if view is None:
        return RunOut.of_header(header)
    return RunOut.of(view, with_clients=client_rows > 0)
