"""A run's planning shards: the planner plans a run a range of clients at a time, each range
in an invocation of its own, and the run is marked running once every range is planned.

Each shard has a row (``SHARD#<index>``). A shard claims its row as it starts (its first
attempt writes its clients' rows in batches, a later one keeps the rows that exist), fixes
where its range ends before its successor starts (a repeated attempt reads the same range,
whatever was configured meanwhile), creates its successor's row, and records what it planned
when done. A shard's successor row exists before the shard is done, so the last shard to
finish, whichever it is, reads every row done: that one marks the run running.
"""

from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.aws import condition_failed
from jobkit.domain.errors import PermanentError
from jobkit.runs.table import RunsTable, expires_at, now

SHARD_PREFIX = "SHARD#"
# What a shard row keeps of its issues: a row stays far below DynamoDB's 400 KB per item
# however many clients a shard meets with an invalid configuration.
ISSUES_PER_SHARD = 100


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


class ShardClaim(BaseModel):
    """A shard as an attempt starts it: its range, and whether it is the first attempt."""

    row: ShardRow
    first: bool


class RunShards:
    def __init__(self, table: RunsTable) -> None:
        self._table = table

    def claim(self, run_id: str, index: int) -> ShardClaim:
        """Start a shard. Shard 0's row is created here; a later one's was created by its
        predecessor, and a shard no predecessor handed off is refused."""
        condition = "attribute_not_exists(started_at)"
        if index > 0:
            condition = f"attribute_exists(sk) AND {condition}"
        try:
            response = self._table.table.update_item(
                Key=shard_key(run_id, index),
                UpdateExpression="SET #index = :index, started_at = :now, expires_at = :expires",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#index": "index"},
                ExpressionAttributeValues={
                    ":index": index,
                    ":now": now(),
                    ":expires": expires_at(),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return ShardClaim(row=self._row(run_id, index), first=False)
        return ShardClaim(row=ShardRow.model_validate(response["Attributes"]), first=True)

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
            fixed = self._row(run_id, index).end_after
            assert fixed is not None  # the condition failed: it is set
            end_after = fixed
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
        item = self._table.table.get_item(Key=shard_key(run_id, index), ConsistentRead=True)
        return "started_at" in item.get("Item", {})

    def rows(self, run_id: str) -> list[ShardRow]:
        """Every shard row of the run, in order, strongly consistent."""
        items = self._table.query_prefix(run_id, SHARD_PREFIX)
        return [ShardRow.model_validate(item) for item in items]

    def _row(self, run_id: str, index: int) -> ShardRow:
        item = self._table.table.get_item(Key=shard_key(run_id, index), ConsistentRead=True)
        if "Item" not in item:
            raise PermanentError(f"shard {index} of run {run_id!r} was never handed off")
        return ShardRow.model_validate(item["Item"])


def run_totals(rows: list[ShardRow]) -> ShardPlanned:
    """The run's totals, summed over its shards (their issues in the shards' order)."""
    return ShardPlanned(
        planned=sum(row.planned for row in rows),
        waiting=sum(row.waiting for row in rows),
        invalid=sum(row.invalid for row in rows),
        not_due=sum(row.not_due for row in rows),
        issues=[issue for row in rows for issue in row.issues],
    )
