"""A run's life, for those who start and stop runs (the planner, the API): open it (once per
id: a repeated trigger finds it), write its client rows, mark it running, close a dry run,
cancel it."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import condition_failed, in_parallel, pages
from jobkit.observability import logger
from jobkit.runs.closing import RunClosing
from jobkit.runs.models import (
    HEADER,
    ClientRun,
    RunHeader,
    RunStatus,
    client_key,
    client_runs_index_keys,
)
from jobkit.runs.table import RunsTable, expires_at, now

# Client rows per writer (a thread each): 40 BatchWriteItem requests. A planner's chunk of
# 2,000 clients is written by two writers at once.
WRITE_CHUNK = 1000
# A run still PLANNING this long after it opened has lost a shard or keeps failing: every
# attempt of a shard ends within the planner's 120 s timeout, and Lambda's asynchronous
# retries of it within about 6 minutes.
STUCK_PLANNING_AFTER = timedelta(minutes=20)
# How far back a fire looks for such runs: the alarm has had a day of fires to see one.
STUCK_PLANNING_WITHIN = timedelta(days=1)


class RunLifecycle:
    def __init__(self, table: RunsTable, closing: RunClosing) -> None:
        self._table = table
        self._closing = closing

    def header(self, run_id: str) -> RunHeader | None:
        return self._table.header(run_id)

    def stuck_in_planning(self, job_type: str, now: datetime) -> list[str]:
        """The job's runs opened in the last day, over ``STUCK_PLANNING_AFTER`` ago, and still
        PLANNING (a shard's invocation lost to the functions' DLQ, or a planner that fails
        every attempt): read from the ``by-job`` index, a day of the job's runs."""
        query: dict[str, Any] = {
            "IndexName": "by-job",
            "KeyConditionExpression": "job_type = :job AND created_at BETWEEN :since AND :until",
            "FilterExpression": "#status = :planning",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":job": job_type,
                ":since": _index_time(now - STUCK_PLANNING_WITHIN),
                ":until": _index_time(now - STUCK_PLANNING_AFTER),
                ":planning": RunStatus.PLANNING.value,
            },
            "ProjectionExpression": "run_id",
        }
        found = pages(self._table.table.query, **query)
        return [str(item["run_id"]) for page in found for item in page.get("Items", [])]

    def open_run(self, header: RunHeader) -> tuple[RunHeader, bool]:
        """Create the run, or return the existing one with the same id (a repeated trigger)."""
        item = header.model_dump(mode="json", exclude_none=True)
        item.update(sk=HEADER, expires_at=expires_at())
        try:
            self._table.table.put_item(
                Item=item, ConditionExpression="attribute_not_exists(run_id)"
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            existing = self.header(header.run_id)
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise
            return existing, False
        return header, True

    def add_clients(self, header: RunHeader, rows: Sequence[ClientRun], *, resume: bool) -> None:
        """Write the client rows; when resuming a run, keep rows that already exist."""
        if not resume:
            items = [_client_item(header, row) for row in rows]
            in_parallel(
                self._write_rows,
                [items[i : i + WRITE_CHUNK] for i in range(0, len(items), WRITE_CHUNK)],
            )
            return
        for row in rows:
            self._table.put_once(_client_item(header, row))

    def _write_rows(self, items: list[dict[str, Any]]) -> None:
        # A writer per thread: boto3's BatchWriter is not thread-safe, its client is.
        with self._table.table.batch_writer() as batch:
            for item in items:
                batch.put_item(Item=item)

    def client_closed(self, header: RunHeader, row: ClientRun) -> None:
        """A client closed as it opened (an invalid configuration): its health is told."""
        self._closing.client_closed(header, row)

    def mark_running(
        self, run_id: str, clients: int, invalid: int, issues: list[str], not_due: int = 0
    ) -> bool:
        """Planning is over: every page item is on the queue. Invalid clients are closed as
        they open; clients not due at a scheduled fire are counted, not planned. False if
        the run had left PLANNING already."""
        header = self._leave_planning(
            run_id, RunStatus.RUNNING, clients, issues, invalid=invalid, not_due=not_due
        )
        if header is not None:
            self._closing.maybe_finish(header)
        return header is not None

    def close_dry_run(self, run_id: str, clients: int, issues: list[str]) -> None:
        """A dry run plans and reports, and enqueues nothing."""
        self._leave_planning(run_id, RunStatus.SUCCEEDED, clients, issues, finished=True)

    def _leave_planning(
        self,
        run_id: str,
        status: RunStatus,
        clients: int,
        issues: list[str],
        invalid: int = 0,
        finished: bool = False,
        not_due: int = 0,
    ) -> RunHeader | None:
        """The run's header out of PLANNING, once: None if another planner of the same run
        (a repeated trigger) got there first."""
        update = (
            "SET #status = :status, clients = :clients, started_at = :now, not_due = :not_due, "
            "issues = list_append(if_not_exists(issues, :empty), :issues)"
        )
        if finished:
            update += ", finished_at = :now"
        if invalid:
            update += " ADD clients_done :invalid, clients_failed :invalid"
        values: dict[str, Any] = {
            ":status": status.value,
            ":planning": RunStatus.PLANNING.value,
            ":clients": clients,
            ":not_due": not_due,
            ":issues": issues,
            ":empty": [],
            ":now": now(),
        }
        if invalid:
            values[":invalid"] = invalid
        try:
            response = self._table.table.update_item(
                Key={"run_id": run_id, "sk": HEADER},
                UpdateExpression=update,
                ConditionExpression="#status = :planning",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return RunHeader.model_validate(response["Attributes"])

    def cancel(self, run_id: str) -> bool:
        """Cancel an open run; its queued items are then skipped. False if already final."""
        try:
            self._table.table.update_item(
                Key={"run_id": run_id, "sk": HEADER},
                UpdateExpression="SET #status = :cancelled, finished_at = :now",
                ConditionExpression="#status IN (:planning, :running)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": RunStatus.CANCELLED.value,
                    ":now": now(),
                    ":planning": RunStatus.PLANNING.value,
                    ":running": RunStatus.RUNNING.value,
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        logger.info("run cancelled", extra={"run_id": run_id})
        return True


def _client_item(header: RunHeader, row: ClientRun) -> dict[str, Any]:
    item = row.model_dump(mode="json", exclude_none=True)
    item.update(client_key(header.run_id, row.client_id), expires_at=expires_at())
    item.update(client_runs_index_keys(header, row.client_id))
    return item


def _index_time(at: datetime) -> str:
    """A bound on ``created_at`` as the header stores it (pydantic's JSON: UTC as ``Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
