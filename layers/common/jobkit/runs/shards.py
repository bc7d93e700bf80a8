"""A run's planning shards: the planner plans a run a range of clients at a time, each range
in an invocation of its own, and the run is marked running once every range is planned.

Each shard has a row (``SHARD#<index>``). A shard claims its row as it starts, and holds it
while it plans, one attempt at a time (``AttemptLease``); its first attempt writes its
clients' rows in batches, a later one keeps the rows that exist. It fixes
where its range ends before its successor starts (a repeated attempt reads the same range,
whatever was configured meanwhile), creates its successor's row, and records what it planned
when done. A shard's successor row exists before the shard is done, so the last shard to
finish, whichever it is, reads every row done: that one marks the run running.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.aws import condition_failed
from jobkit.domain.errors import PermanentError, ShardBusyError
from jobkit.runs.table import RunsTable, expires_at, now

SHARD_PREFIX = "SHARD#"
# What a shard row keeps of its issues: a row stays far below DynamoDB's 400 KB per item
# however many clients a shard meets with an invalid configuration.
ISSUES_PER_SHARD = 100
# No Lambda invocation runs longer than 15 minutes: the lease of an attempt that does not
# say when it ends.
MAX_ATTEMPT = timedelta(minutes=15)
LEASE_MARGIN_SECONDS = 10


def shard_key(run_id: str, index: int) -> dict[str, Any]:
    return {"run_id": run_id, "sk": f"{SHARD_PREFIX}{index:05d}"}


class ShardPlanned(BaseModel):
    """What a shard planned: its part of the run's totals."""

    model_config = ConfigDict(extra="ignore")

    planned: int = 0
    waiting: int = 0
    invalid: int = 0
    not_due: int = 0
    issues: list[str] = Field(default_factory=list)


class ShardRow(ShardPlanned):
    index: int
    start_after: str | None = None  # the range's clients come after this id (none: first)
    end_after: str | None = None  # the range's last id, fixed before the successor starts
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    lease_until: int | None = None  # epoch seconds: when the attempt holding it has ended


@dataclass(frozen=True)
class AttemptLease:
    """What a planning attempt holds on its shard while it plans it: no other attempt plans
    the shard until the holder has ended. Two attempts at once (a fire or an invocation
    delivered twice) would otherwise race: the first attempt writes its client rows with
    unconditional batch writes, which would reset the counters of a client the other had
    already planned and a processor already counted. An attempt that fails releases its
    lease; one that Lambda stops (a timeout) holds it until its invocation's deadline."""

    holder: str
    until: int

    @classmethod
    def until_deadline(cls, ends_by: datetime | None) -> "AttemptLease":
        """The lease of an attempt whose invocation ends by ``ends_by`` (None: Lambda's
        longest timeout from now), with a margin for the clocks of two hosts."""
        deadline = ends_by or datetime.now(UTC) + MAX_ATTEMPT
        return cls(uuid.uuid4().hex, int(deadline.timestamp()) + LEASE_MARGIN_SECONDS)


class ShardClaim(BaseModel):
    """A shard as an attempt starts it: its range, and whether it is the first attempt."""

    row: ShardRow
    first: bool


class RunShards:
    def __init__(self, table: RunsTable) -> None:
        self._table = table

    def claim(self, run_id: str, index: int, lease: AttemptLease) -> ShardClaim:
        """Start a shard, holding its lease. Shard 0's row is created here; a later one's was
        created by its predecessor, and a shard no predecessor handed off is refused. A shard
        another attempt holds is refused with a retryable error (see ``AttemptLease``)."""
        condition = (
            "attribute_not_exists(finished_at) AND "
            "(attribute_not_exists(lease_until) OR lease_until < :now_epoch)"
        )
        if index > 0:
            condition = f"attribute_exists(sk) AND {condition}"
        try:
            response = self._table.table.update_item(
                Key=shard_key(run_id, index),
                UpdateExpression=(
                    "SET #index = :index, started_at = if_not_exists(started_at, :now), "
                    "lease_holder = :holder, lease_until = :until, expires_at = :expires "
                    "ADD attempts :one"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#index": "index"},
                ExpressionAttributeValues={
                    ":index": index,
                    ":now": now(),
                    ":now_epoch": int(time.time()),
                    ":holder": lease.holder,
                    ":until": lease.until,
                    ":one": 1,
                    ":expires": expires_at(),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return self._refused(run_id, index)
        row = ShardRow.model_validate(response["Attributes"])
        return ShardClaim(row=row, first=row.attempts == 1)

    def release(self, run_id: str, index: int, lease: AttemptLease) -> None:
        """An attempt that failed lets go of its shard at once: the retry need not wait for
        the lease to run out. Only its own lease (a later attempt may have taken it over)."""
        try:
            self._table.table.update_item(
                Key=shard_key(run_id, index),
                UpdateExpression="REMOVE lease_until",
                ConditionExpression="lease_holder = :holder",
                ExpressionAttributeValues={":holder": lease.holder},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    def _refused(self, run_id: str, index: int) -> ShardClaim:
        row = self._row(run_id, index)
        if row is None:
            raise PermanentError(f"shard {index} of run {run_id!r} was never handed off")
        if row.finished_at is None:
            raise ShardBusyError(
                f"shard {index} of run {run_id!r} is being planned by another attempt "
                f"(its lease runs until {row.lease_until}); retried once that one has ended"
            )
        return ShardClaim(row=row, first=False)

    def hand_off(self, run_id: str, index: int, end_after: str) -> str:
        """Fix the shard's range to end at ``end_after`` and create its successor's row.
        Returns where the range ends: an attempt that ran at the same time may have fixed it
        first, elsewhere."""
        try:
            self._table.table.update_item(
                Key=shard_key(run_id, index),
                UpdateExpression="SET end_after = :end",
                ConditionExpression="attribute_not_exists(end_after)",
                ExpressionAttributeValues={":end": end_after},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            row = self._row(run_id, index)
            assert row is not None and row.end_after is not None  # the condition failed: set
            end_after = row.end_after
        self.create_successor(run_id, index, end_after)
        return end_after

    def create_successor(self, run_id: str, index: int, end_after: str) -> None:
        """The next shard's row, once (every attempt makes sure of it before it is done)."""
        item = {
            **shard_key(run_id, index + 1),
            "index": index + 1,
            "start_after": end_after,
            "expires_at": expires_at(),
        }
        self._table.put_once(item)

    def finish(self, run_id: str, index: int, planned: ShardPlanned) -> list[ShardRow] | None:
        """Record what the shard planned, once. Returns the run's shard rows if every one is
        done, else None: the shard that reads them all done marks the run running (the
        header's condition decides between two that both read so)."""
        issues = planned.issues[:ISSUES_PER_SHARD]
        if len(planned.issues) > ISSUES_PER_SHARD:
            issues.append(f"... and {len(planned.issues) - ISSUES_PER_SHARD} more issues")
        try:
            self._table.table.update_item(
                Key=shard_key(run_id, index),
                UpdateExpression=(
                    "SET finished_at = :now, planned = :planned, waiting = :waiting, "
                    "invalid = :invalid, not_due = :not_due, issues = :issues"
                ),
                ConditionExpression="attribute_not_exists(finished_at)",
                ExpressionAttributeValues={
                    ":now": now(),
                    ":planned": planned.planned,
                    ":waiting": planned.waiting,
                    ":invalid": planned.invalid,
                    ":not_due": planned.not_due,
                    ":issues": issues,
                },
            )
        except ClientError as exc:
            # A refusal means it was done before: by an earlier attempt, or one at once.
            if not condition_failed(exc):
                raise
        rows = self.rows(run_id)
        return rows if all(row.finished_at is not None for row in rows) else None

    def started(self, run_id: str, index: int) -> bool:
        """Whether an attempt of this shard has claimed it."""
        row = self._row(run_id, index)
        return row is not None and row.started_at is not None

    def rows(self, run_id: str) -> list[ShardRow]:
        """Every shard row of the run, in order, strongly consistent."""
        items = self._table.query_prefix(run_id, SHARD_PREFIX)
        return [ShardRow.model_validate(item) for item in items]

    def _row(self, run_id: str, index: int) -> ShardRow | None:
        item = self._table.item(run_id, shard_key(run_id, index)["sk"])
        return ShardRow.model_validate(item) if item is not None else None


def run_totals(rows: list[ShardRow]) -> ShardPlanned:
    """The run's totals, summed over its shards (their issues in the shards' order)."""
    return ShardPlanned(
        planned=sum(row.planned for row in rows),
        waiting=sum(row.waiting for row in rows),
        invalid=sum(row.invalid for row in rows),
        not_due=sum(row.not_due for row in rows),
        issues=[issue for row in rows for issue in row.issues],
    )
