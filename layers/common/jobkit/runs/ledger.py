"""Runs: the async job record, its per-client rows and exactly-once outcome counting.

Layout of the Runs table (partition ``run_id``, sort ``sk``):
- ``RUN``               the header: status, trigger, timings, totals, issues;
- ``CLIENT#<id>``       one row per client: its counters while the run is open;
- ``PAGE#<envelope>``   one row per fetched page (marks its records as received, once);
- ``ITEM#<envelope>``   one row per item outcome (processed, skipped, failed + reason).

Counting is exactly-once per envelope: an outcome row is written with
``attribute_not_exists`` in the same transaction that moves the client's counters, so a
redelivered item is never counted twice. A client closes when its pages are all fetched and
every received item has an outcome; the run closes when its last client does, and the
header's totals are the sum of its clients'.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.aws import (
    batch_get,
    condition_failed,
    error_code,
    failed_conditions,
    transaction_cancelled,
)
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.errors import ConcurrentUpdateError
from jobkit.observability import logger

HEADER = "RUN"
RETENTION = timedelta(days=90)
_MAX_TRANSACT_ITEMS = 100
_CONFLICT_ATTEMPTS = 6
COUNTERS = ("received", "processed", "failed", "skipped", "dead_lettered", "retries", "ack_failed")


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


class RunHeader(BaseModel):
    model_config = ConfigDict(extra="ignore")

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
    received: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0
    ack_failed: int = 0
    issues: list[str] = Field(default_factory=list)


class ClientRun(BaseModel):
    model_config = ConfigDict(extra="ignore")

    client_id: str
    group_id: str = ""
    status: ClientStatus = ClientStatus.RUNNING
    pages_open: int = 0
    open_items: int = 0
    pages: int = 0
    received: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0
    ack_failed: int = 0
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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _expires_at() -> int:
    return int((datetime.now(UTC) + RETENTION).timestamp())


class RunStore:
    def __init__(
        self, table: Any, on_client_closed: Callable[[str, ClientRun], object] | None = None
    ) -> None:
        self._table = table
        self._client = table.meta.client
        self._on_client_closed = on_client_closed

    # -- planning ---------------------------------------------------------------------------

    def open_run(self, header: RunHeader) -> tuple[RunHeader, bool]:
        """Create the run, or return the existing one with the same id (a repeated trigger)."""
        item = header.model_dump(mode="json", exclude_none=True)
        item.update(sk=HEADER, expires_at=_expires_at())
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(run_id)")
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            existing = self.header(header.run_id)
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise
            return existing, False
        return header, True

    def add_clients(self, run_id: str, rows: Sequence[ClientRun], *, resume: bool) -> None:
        """Write the client rows; when resuming a run, keep rows that already exist."""
        if not resume:
            with self._table.batch_writer() as batch:
                for row in rows:
                    batch.put_item(Item=self._client_item(run_id, row))
            return
        for row in rows:
            try:
                self._table.put_item(
                    Item=self._client_item(run_id, row),
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ClientError as exc:
                if not condition_failed(exc):
                    raise

    def _client_item(self, run_id: str, row: ClientRun) -> dict[str, Any]:
        item = row.model_dump(mode="json", exclude_none=True)
        item.update(run_id=run_id, sk=f"CLIENT#{row.client_id}", expires_at=_expires_at())
        return item

    def mark_running(self, run_id: str, clients: int, invalid: int, issues: list[str]) -> None:
        """Planning is over: every page item is on the queue."""
        try:
            response = self._table.update_item(
                Key={"run_id": run_id, "sk": HEADER},
                UpdateExpression=(
                    "SET #status = :running, clients = :clients, started_at = :now, "
                    "issues = list_append(if_not_exists(issues, :empty), :issues) "
                    "ADD clients_done :invalid, clients_failed :invalid"
                ),
                ConditionExpression="#status = :planning",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":running": RunStatus.RUNNING.value,
                    ":planning": RunStatus.PLANNING.value,
                    ":clients": clients,
                    ":invalid": invalid,
                    ":issues": issues,
                    ":empty": [],
                    ":now": _now(),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return  # another planner of the same run got there first
            raise
        self._maybe_finish(RunHeader.model_validate(response["Attributes"]))

    # -- counting ---------------------------------------------------------------------------

    def snapshot_page(
        self, run_id: str, client_id: str, envelope_id: str, snapshot: PageSnapshot
    ) -> PageSnapshot:
        """Keep what this page held the first time it was fetched, and return that.

        A page fetched again after a crash may differ (the external system drops records
        once they are acknowledged, and the window slides on): the run counts, and pages on,
        from the first fetch, so totals close and the next page is the same page.

        The next page is opened on the client's row here, with the snapshot and before it is
        enqueued: were it opened when this page is counted, the next page could be counted
        (and its records) first, and the client close with this page's records missing.
        """
        sk = f"PAGESNAP#{envelope_id}"
        marker: dict[str, Any] = {"record_ids": list(snapshot.record_ids)}
        if snapshot.next_cursor is not None:
            marker["next_cursor"] = snapshot.next_cursor
        if snapshot.resume_at is not None:
            marker["resume_at"] = snapshot.resume_at
        if snapshot.next_cursor is not None:
            if self._transact_once(run_id, client_id, sk, marker, {"pages_open": 1}):
                return snapshot
        else:
            item = {"run_id": run_id, "sk": sk, "expires_at": _expires_at(), **marker}
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(sk)")
                return snapshot
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
        stored = self._table.get_item(Key={"run_id": run_id, "sk": sk}, ConsistentRead=True)["Item"]
        return PageSnapshot(
            record_ids=tuple(stored.get("record_ids", [])),
            next_cursor=stored.get("next_cursor"),
            resume_at=stored.get("resume_at"),
        )

    def count_page(
        self,
        run_id: str,
        client_id: str,
        envelope_id: str,
        page_number: int,
        records: int,
    ) -> None:
        """The page's records are on the queue: count them as received, once."""
        marker = {
            "client_id": client_id,
            "page_number": page_number,
            "records": records,
            "outcome": "fetched",
        }
        # The next page, if any, was opened with this page's snapshot.
        deltas = {"received": records, "open_items": records, "pages": 1, "pages_open": -1}
        if self._transact_once(run_id, client_id, f"PAGE#{envelope_id}", marker, deltas):
            self.try_close_client(run_id, client_id)

    def fail_page(
        self, run_id: str, client_id: str, envelope_id: str, page_number: int, reason: str
    ) -> None:
        """A page that could not be fetched: the client's run ends failed with this reason."""
        marker = {
            "client_id": client_id,
            "page_number": page_number,
            "records": 0,
            "outcome": Outcome.FAILED.value,
            "reason": reason,
        }
        deltas = {"pages_open": -1, "dead_lettered": 1}
        if self._transact_once(
            run_id, client_id, f"PAGE#{envelope_id}", marker, deltas, error=reason
        ):
            self.try_close_client(run_id, client_id)

    def count_outcomes(self, run_id: str, client_id: str, outcomes: Sequence[ItemOutcome]) -> int:
        """Count each outcome once; returns how many were new."""
        return self.count_run_outcomes(run_id, {client_id: outcomes}).get(client_id, 0)

    def count_run_outcomes(
        self, run_id: str, outcomes_by_client: Mapping[str, Sequence[ItemOutcome]]
    ) -> dict[str, int]:
        """Count each outcome of one run once, whichever clients they belong to; returns how
        many were new, per client.

        A batch holds a few records of several clients: their markers and each client's
        counters go in one transaction (up to 100 items), not one transaction per client.
        """
        pending: list[tuple[str, ItemOutcome]] = []
        for client_id, outcomes in outcomes_by_client.items():
            # The same envelope twice in one batch (a duplicate delivery) must be one write:
            # a transaction may not touch one item twice.
            unique = {item.envelope_id: item for item in reversed(outcomes)}
            pending += [(client_id, item) for item in reversed(unique.values())]
        counted: Counter[str] = Counter()
        for chunk in _transaction_chunks(pending):
            counted.update(self._count_chunk(run_id, chunk))
        for client_id, n in counted.items():
            if n:
                self.try_close_client(run_id, client_id)
        return dict(counted)

    def add_to_client(self, run_id: str, client_id: str, **deltas: int) -> None:
        """Informational counters (retries, ack failures) that do not decide closing."""
        update = UpdateExpression()
        for name, delta in deltas.items():
            update.add(name, delta)
        self._table.update_item(
            Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"}, **update.arguments()
        )

    def _count_chunk(self, run_id: str, outcomes: list[tuple[str, ItemOutcome]]) -> Counter[str]:
        """How many outcomes were new, per client."""
        pending = outcomes
        for attempt in range(_CONFLICT_ATTEMPTS):
            if not pending:
                return Counter()
            try:
                self._client.transact_write_items(
                    TransactItems=self._outcome_writes(run_id, pending)
                )
                return Counter(client_id for client_id, _ in pending)
            except ClientError as exc:
                remaining = self._without_duplicates(exc, run_id, pending)
            if remaining is None:
                # No per-item reasons to tell duplicates apart: count one by one.
                return sum((self._count_chunk(run_id, [one]) for one in pending), Counter())
            if len(remaining) == len(pending):
                _backoff(attempt)  # a conflict, not a duplicate: try the same again
            pending = remaining
        raise ConcurrentUpdateError(f"counting on run {run_id!r} kept conflicting")

    def _outcome_writes(
        self, run_id: str, pending: list[tuple[str, ItemOutcome]]
    ) -> list[dict[str, Any]]:
        """The markers first (CancellationReasons index them), then one update per client."""
        deltas: dict[str, dict[str, int]] = {}
        for client_id, item in pending:
            client = deltas.setdefault(client_id, {"open_items": 0})
            client["open_items"] -= 1
            client[item.outcome.value] = client.get(item.outcome.value, 0) + 1
            if item.dead_lettered:
                client["dead_lettered"] = client.get("dead_lettered", 0) + 1
        markers = [self._marker_put(run_id, client_id, item) for client_id, item in pending]
        updates = [self._client_update(run_id, client_id, d) for client_id, d in deltas.items()]
        return [*markers, *updates]

    def _without_duplicates(
        self, exc: ClientError, run_id: str, pending: list[tuple[str, ItemOutcome]]
    ) -> list[tuple[str, ItemOutcome]] | None:
        """What is left to count after a cancelled transaction; None if it cannot tell."""
        if not transaction_cancelled(exc):
            raise exc
        reasons = failed_conditions(exc)
        if reasons:
            duplicates = {index for index, failed in enumerate(reasons[: len(pending)]) if failed}
        elif len(pending) == 1:
            counted = self._exists(run_id, f"ITEM#{pending[0][1].envelope_id}")
            duplicates = {0} if counted else set()
        else:
            return None
        for index in duplicates:
            self._recount_redriven(run_id, *pending[index])
        return [one for index, one in enumerate(pending) if index not in duplicates]

    def _recount_redriven(self, run_id: str, client_id: str, item: ItemOutcome) -> None:
        """A dead-lettered item, redriven, that now succeeded: move it out of ``failed``.

        The outcome row flips from failed under a condition, in the same transaction as the
        client's counters, so a redelivered redrive moves nothing twice.
        """
        if item.outcome is Outcome.FAILED:
            return
        deltas = {Outcome.FAILED.value: -1, item.outcome.value: 1}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": {"run_id": run_id, "sk": f"ITEM#{item.envelope_id}"},
                            "UpdateExpression": (
                                "SET outcome = :new, reason = :reason, redriven_at = :now"
                            ),
                            "ConditionExpression": "outcome = :failed",
                            "ExpressionAttributeValues": {
                                ":new": item.outcome.value,
                                ":failed": Outcome.FAILED.value,
                                ":reason": f"redriven: {item.reason}",
                                ":now": _now(),
                            },
                        }
                    },
                    self._client_update(run_id, client_id, deltas),
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return  # not a failed outcome (a plain duplicate), or already recounted
            raise
        logger.info(
            "redriven item recounted",
            extra={
                "run_id": run_id,
                "client_id": client_id,
                "item_id": item.envelope_id,
                "outcome": item.outcome.value,
            },
        )
        client = self._table.get_item(
            Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"}, ConsistentRead=True
        ).get("Item", {})
        if client.get("status") == ClientStatus.DONE.value:
            # The client's totals were already rolled up into the header: move them there too.
            self._table.update_item(
                Key={"run_id": run_id, "sk": HEADER},
                UpdateExpression="ADD #failed :minus, #new :plus",
                ExpressionAttributeNames={
                    "#failed": Outcome.FAILED.value,
                    "#new": item.outcome.value,
                },
                ExpressionAttributeValues={":minus": -1, ":plus": 1},
            )

    def _marker_put(self, run_id: str, client_id: str, item: ItemOutcome) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table.name,
                "Item": {
                    "run_id": run_id,
                    "sk": f"ITEM#{item.envelope_id}",
                    "client_id": client_id,
                    "record_id": item.record_id,
                    "item_key": item.item_key,
                    "outcome": item.outcome.value,
                    "reason": item.reason,
                    "dead_lettered": item.dead_lettered,
                    "at": _now(),
                    "expires_at": _expires_at(),
                },
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _client_update(
        self,
        run_id: str,
        client_id: str,
        deltas: dict[str, int],
        error: str | None = None,
        sets: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        update = UpdateExpression()
        for name, delta in deltas.items():
            update.add(name, delta)
        sets = dict(sets or {})
        if error is not None:
            sets["error"] = error[:500]
        for name, value in sets.items():
            update.set(name, value)
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"run_id": run_id, "sk": f"CLIENT#{client_id}"},
                **update.arguments(),
            }
        }

    def _transact_once(
        self,
        run_id: str,
        client_id: str,
        sk: str,
        marker: dict[str, Any],
        deltas: dict[str, int],
        error: str | None = None,
        sets: dict[str, Any] | None = None,
    ) -> bool:
        """Write a marker row and move counters together; False if the marker existed."""
        put = {
            "Put": {
                "TableName": self._table.name,
                "Item": {
                    "run_id": run_id,
                    "sk": sk,
                    "at": _now(),
                    "expires_at": _expires_at(),
                    **marker,
                },
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        put,
                        self._client_update(run_id, client_id, deltas, error, sets),
                    ]
                )
                return True
            except ClientError as exc:
                reasons = failed_conditions(exc)
                if reasons[:1] == [True]:
                    return False
                if not transaction_cancelled(exc):
                    raise
                if not reasons and self._exists(run_id, sk):
                    return False
                _backoff(attempt)
        raise ConcurrentUpdateError(f"counting on run {run_id!r} kept conflicting")

    def _exists(self, run_id: str, sk: str) -> bool:
        key = {"run_id": run_id, "sk": sk}
        return "Item" in self._table.get_item(Key=key, ConsistentRead=True)

    # -- client-level retries ---------------------------------------------------------------

    def park_client(
        self,
        run_id: str,
        client_id: str,
        envelope_id: str,
        page_number: int,
        reason: str,
        attempt: int,
        retry_at: str,
    ) -> bool:
        """The client's page failed as a whole: it waits for retry ``attempt`` (once per page
        envelope; False if this page was parked before)."""
        marker = {
            "client_id": client_id,
            "page_number": page_number,
            "records": 0,
            "outcome": "retry",
            "reason": reason,
        }
        return self._transact_once(
            run_id,
            client_id,
            f"PAGE#{envelope_id}",
            marker,
            {"pages_open": -1, "retries": 1},
            sets={
                "status": ClientStatus.WAITING.value,
                "attempt": attempt,
                "next_retry_at": retry_at,
                "last_error": reason[:500],
            },
        )

    def resume_client(self, run_id: str, client_id: str, attempt: int) -> bool:
        """Retry ``attempt`` starts: the client runs again with one page open. Once per
        attempt: False if that attempt had already resumed it."""
        return self._transact_once(
            run_id,
            client_id,
            f"RETRY#{client_id}#{attempt}",
            {"client_id": client_id, "attempt": attempt},
            {"pages_open": 1},
            sets={"status": ClientStatus.RUNNING.value, "attempt": attempt, "next_retry_at": None},
        )

    def delay_client(
        self, run_id: str, client_id: str, attempt: int, retry_at: str, reason: str
    ) -> None:
        """A waiting client's retry found its circuit still open: it waits longer."""
        self._table.update_item(
            Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"},
            UpdateExpression=(
                "SET attempt = :attempt, next_retry_at = :at, last_error = :reason ADD retries :one"
            ),
            ExpressionAttributeValues={
                ":attempt": attempt,
                ":at": retry_at,
                ":reason": reason[:500],
                ":one": 1,
            },
        )

    def poison_client(self, run_id: str, client_id: str, reason: str) -> None:
        """Retries are exhausted: the client's part of the run fails with this reason (it
        closes once its items already in flight are counted)."""
        self._table.update_item(
            Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"},
            UpdateExpression="SET #status = :running, #error = :reason REMOVE next_retry_at",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":running": ClientStatus.RUNNING.value,
                ":reason": reason[:500],
            },
        )
        self.add_issue(run_id, f"client {client_id}: poison: {reason}"[:1000])
        self.try_close_client(run_id, client_id)

    def add_issue(self, run_id: str, issue: str) -> None:
        self._table.update_item(
            Key={"run_id": run_id, "sk": HEADER},
            UpdateExpression="SET issues = list_append(if_not_exists(issues, :empty), :issue)",
            ExpressionAttributeValues={":issue": [issue], ":empty": []},
        )

    # -- closing ----------------------------------------------------------------------------

    def try_close_client(self, run_id: str, client_id: str) -> bool:
        """Close the client's part of the run if every page is fetched and every item counted.

        Called after every count, and almost always too early: a strongly consistent read
        (a fifth of a conditional write's price) decides whether the guarded write is worth
        making. The read follows our own committed count, so the last count of a client
        always sees it closable; the write's condition still decides between racers.
        """
        current = self._table.get_item(
            Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"},
            ConsistentRead=True,
            ProjectionExpression="#status, pages_open, open_items",
            ExpressionAttributeNames={"#status": "status"},
        ).get("Item")
        if current is None or not (
            current.get("status") == ClientStatus.RUNNING.value
            and current.get("pages_open") == 0
            and current.get("open_items") == 0
        ):
            return False
        try:
            response = self._table.update_item(
                Key={"run_id": run_id, "sk": f"CLIENT#{client_id}"},
                UpdateExpression="SET #status = :done, finished_at = :now",
                ConditionExpression=(
                    "#status = :running AND pages_open = :zero AND open_items = :zero"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":done": ClientStatus.DONE.value,
                    ":running": ClientStatus.RUNNING.value,
                    ":zero": 0,
                    ":now": _now(),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        row = ClientRun.model_validate(response["Attributes"])
        self._roll_up(run_id, row)
        return True

    def _roll_up(self, run_id: str, row: ClientRun) -> None:
        totals = {name: getattr(row, name) for name in COUNTERS}
        totals["clients_done"] = 1
        totals["clients_failed"] = 1 if row.result == "FAILED" else 0
        update = UpdateExpression()
        for name, total in totals.items():
            update.add(name, total)
        response = self._table.update_item(
            Key={"run_id": run_id, "sk": HEADER}, ReturnValues="ALL_NEW", **update.arguments()
        )
        header = RunHeader.model_validate(response["Attributes"])
        self.client_closed(header.job_type, row)
        self._maybe_finish(header)

    def client_closed(self, job_type: str, row: ClientRun) -> None:
        """Tell the health bookkeeping a client's part of a run is over."""
        if self._on_client_closed is None:
            return
        try:
            self._on_client_closed(job_type, row)
        except Exception:  # noqa: BLE001 - health bookkeeping must not stop a run closing
            logger.exception("recording client health failed", extra={"client_id": row.client_id})

    def _maybe_finish(self, header: RunHeader) -> None:
        if header.status is not RunStatus.RUNNING or header.clients_done < header.clients:
            return
        final = final_status(header)
        finished_at = datetime.now(UTC)
        try:
            self._table.update_item(
                Key={"run_id": header.run_id, "sk": HEADER},
                UpdateExpression="SET #status = :final, finished_at = :now",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":final": final.value,
                    ":running": RunStatus.RUNNING.value,
                    ":now": finished_at.isoformat(),
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return  # closed by someone else
            raise
        started = header.started_at or header.created_at
        duration = (finished_at - started).total_seconds()
        ratio = processed_ratio(header.received, header.processed)
        for name, unit, value in (
            ("RunDuration", MetricUnit.Seconds, duration),
            ("ProcessedRatio", MetricUnit.Percent, ratio),  # the alarm's input: < 95 pages
        ):
            with single_metric(
                name=name, unit=unit, value=value, default_dimensions={"job_type": header.job_type}
            ) as metric:
                metric.add_metadata("run_id", header.run_id)
        logger.info(
            "run completed",
            extra={
                "run_id": header.run_id,
                "job_type": header.job_type,
                "status": final.value,
                "clients": header.clients,
                "received": header.received,
                "processed": header.processed,
                "errors": header.failed,
                "skipped": header.skipped,
                "dead_lettered": header.dead_lettered,
                "duration_seconds": round(duration, 3),
                "average_item_ms": round(1000 * duration / header.received, 3)
                if header.received
                else None,
            },
        )

    def close_dry_run(self, run_id: str, clients: int, issues: list[str]) -> None:
        """A dry run plans and reports, and enqueues nothing."""
        now = _now()
        self._table.update_item(
            Key={"run_id": run_id, "sk": HEADER},
            UpdateExpression=(
                "SET #status = :done, clients = :clients, started_at = :now, finished_at = :now, "
                "issues = list_append(if_not_exists(issues, :empty), :issues)"
            ),
            ConditionExpression="#status = :planning",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":done": RunStatus.SUCCEEDED.value,
                ":clients": clients,
                ":now": now,
                ":issues": issues,
                ":empty": [],
                ":planning": RunStatus.PLANNING.value,
            },
        )

    def cancel(self, run_id: str) -> bool:
        """Cancel an open run; its queued items are then skipped. False if already final."""
        try:
            self._table.update_item(
                Key={"run_id": run_id, "sk": HEADER},
                UpdateExpression="SET #status = :cancelled, finished_at = :now",
                ConditionExpression="#status IN (:planning, :running)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": RunStatus.CANCELLED.value,
                    ":now": _now(),
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

    # -- reading ----------------------------------------------------------------------------

    def header(self, run_id: str) -> RunHeader | None:
        item = self._table.get_item(Key={"run_id": run_id, "sk": HEADER}, ConsistentRead=True)
        return RunHeader.model_validate(item["Item"]) if "Item" in item else None

    def view(self, run_id: str) -> RunView | None:
        header = self.header(run_id)
        if header is None:
            return None
        rows = self._query_prefix(run_id, "CLIENT#")
        return RunView(header=header, clients=[ClientRun.model_validate(row) for row in rows])

    def client_rows(self, run_id: str, client_ids: Sequence[str]) -> dict[str, ClientRun]:
        """These clients' rows of a run, by client id (absent: not in the run). A key per
        client, so reading a few clients of a run of 100,000 reads a few rows."""
        keys = [{"run_id": run_id, "sk": f"CLIENT#{client_id}"} for client_id in client_ids]
        rows = (
            ClientRun.model_validate(row) for row in batch_get(self._client, self._table.name, keys)
        )
        return {row.client_id: row for row in rows}

    def clients_page(
        self, run_id: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[ClientRun], dict[str, Any] | None]:
        """One page of a run's client rows, by client id, and where the next starts."""
        rows, last = self._prefix_page(run_id, "CLIENT#", limit, start)
        return [ClientRun.model_validate(row) for row in rows], last

    def items(self, run_id: str) -> list[dict[str, Any]]:
        return self._query_prefix(run_id, "ITEM#")

    def items_page(
        self, run_id: str, outcome: str | None, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of item outcomes, optionally of one outcome, and where the next starts."""
        return self._prefix_page(run_id, "ITEM#", limit, start, outcome=outcome)

    def _prefix_page(
        self,
        run_id: str,
        prefix: str,
        limit: int,
        start: dict[str, Any] | None,
        outcome: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "run_id = :run AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":run": run_id, ":prefix": prefix},
            "Limit": limit,
        }
        if outcome is not None:
            kwargs["FilterExpression"] = "outcome = :outcome"
            kwargs["ExpressionAttributeValues"][":outcome"] = outcome
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self._table.query(**kwargs)
        return list(page.get("Items", [])), page.get("LastEvaluatedKey")

    def _query_prefix(self, run_id: str, prefix: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "run_id = :run AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":run": run_id, ":prefix": prefix},
            "ConsistentRead": True,
        }
        rows: list[dict[str, Any]] = []
        while True:
            page = self._table.query(**kwargs)
            rows.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return rows
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def recent_runs(self, job_type: str, limit: int = 20) -> list[RunHeader]:
        return self.runs_page(job_type, limit, None)[0]

    def runs_page(
        self, job_type: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[RunHeader], dict[str, Any] | None]:
        """Runs of a job type, newest first, a page at a time."""
        kwargs: dict[str, Any] = {
            "IndexName": "by-job",
            "KeyConditionExpression": "job_type = :job",
            "ExpressionAttributeValues": {":job": job_type},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self._table.query(**kwargs)
        runs = [RunHeader.model_validate(item) for item in page.get("Items", [])]
        return runs, page.get("LastEvaluatedKey")


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


def _transaction_chunks(
    pending: list[tuple[str, ItemOutcome]],
) -> Iterator[list[tuple[str, ItemOutcome]]]:
    """Markers plus one update per client present, at most 100 items per transaction."""
    chunk: list[tuple[str, ItemOutcome]] = []
    clients: set[str] = set()
    for client_id, item in pending:
        updates = len(clients) + (client_id not in clients)
        if chunk and len(chunk) + 1 + updates > _MAX_TRANSACT_ITEMS:
            yield chunk
            chunk, clients = [], set()
        chunk.append((client_id, item))
        clients.add(client_id)
    if chunk:
        yield chunk


def _backoff(attempt: int) -> None:
    # Transaction conflicts are not retried by botocore; jittered, bounded backoff.
    time.sleep(backoff_seconds(attempt + 1, 0.05, 1.0))
