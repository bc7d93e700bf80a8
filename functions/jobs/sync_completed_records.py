"""sync-completed-records: records completed in the external system become COMPLETED here.

For each enabled client, fetch its completed records (paged); for each record move the
platform record to COMPLETED through the workflow (history row), register the COMPLETED
workflow trigger and clear its pending items; acknowledge back only what succeeded.

The client's query fields shape what is fetched: ``days`` (records completed within that many
days before the run's time), ``year`` (completed that year) and ``script`` (the external
system's query). A backfill asks for its window instead of the last ``days``.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.job import (
    AckRef,
    AckResult,
    ExternalRecord,
    Job,
    Page,
    PageRequest,
    Skip,
    Transition,
)

OPEN_STATUSES = frozenset({"OPEN", "PENDING", "IN_PROGRESS"})
# The seed's defaults, for a client row that leaves the field unset.
DEFAULT_DAYS = 7
DEFAULT_SCRIPT = "GET_COMPLETED"
CONFIG_FIELDS = frozenset({"days", "year", "script"})


class CompletedRecord(ExternalRecord):
    group_id: str
    status: Literal["COMPLETED"]
    completed_at: datetime
    pending_items: list[str] = []


class _RecordsPage(BaseModel):
    records: list[dict[str, Any]]
    next_cursor: str | None


class _AckResponse(BaseModel):
    acknowledged: list[str]
    unknown: list[str] = []


def records_query(client: ClientConfig, request: PageRequest) -> dict[str, Any]:
    """The external system's records query for one page of this client: those completed in
    the last ``days`` before the run's time, or, for a backfill, in its window (acknowledged
    or not)."""
    params: dict[str, Any] = {
        "status": "completed",
        "group": client.group_id,
        "limit": client.page_size,
        "script": client.script or DEFAULT_SCRIPT,
    }
    if request.window is not None:
        params["completed_from"] = request.window.start.isoformat()
        params["completed_to"] = request.window.end.isoformat()
    else:
        since = request.as_of - timedelta(days=client.days or DEFAULT_DAYS)
        params["completed_after"] = since.isoformat()
    if client.year is not None:
        params["year"] = client.year
    if request.cursor is not None:
        params["cursor"] = request.cursor
    return params


def fetch_page(external: ExternalSystem, client: ClientConfig, request: PageRequest) -> Page:
    params = records_query(client, request)
    path = f"{client.route}/clients/{client.client_id}/records"
    page = external.get_as(_RecordsPage, path, params)
    return Page(records=page.records, next_cursor=page.next_cursor)


def process(record: CompletedRecord, client: ClientConfig) -> Transition | Skip:
    if record.group_id != client.group_id:
        return Skip(f"record is in group {record.group_id}, client syncs {client.group_id}")
    return Transition(
        to_status="COMPLETED",
        allowed_from=OPEN_STATUSES,
        reason=f"completed in the external system at {record.completed_at.isoformat()}",
        triggers=("COMPLETED",),
        clear_pending=True,
    )


def acknowledge(
    external: ExternalSystem, client: ClientConfig, refs: Sequence[AckRef]
) -> AckResult:
    answer = external.post_as(
        _AckResponse,
        f"{client.route}/clients/{client.client_id}/acks",
        {"acks": [{"record_id": ref.record_id, "version": ref.version} for ref in refs]},
    )
    return AckResult(
        acknowledged=frozenset(answer.acknowledged),
        rejected={record_id: "unknown to the external system" for record_id in answer.unknown},
    )


JOB = Job(
    name="sync-completed-records",
    description="Mark records completed in the external system as COMPLETED on the platform.",
    record_model=CompletedRecord,
    fetch_page=fetch_page,
    process=process,
    acknowledge=acknowledge,
    config_fields=CONFIG_FIELDS,
    windowed=True,
)
