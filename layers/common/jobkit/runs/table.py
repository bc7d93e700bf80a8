"""The Runs table as every part of the ledger writes to it: keys, expiry, and the one
guarded write they share (a marker row and a client's counters in one transaction)."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import condition_failed, failed_conditions, pages, transaction_cancelled
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.errors import ConcurrentUpdateError
from jobkit.runs.models import HEADER, RunHeader, client_key

RETENTION = timedelta(days=90)
CONFLICT_ATTEMPTS = 6


def now() -> str:
    return datetime.now(UTC).isoformat()


def expires_at() -> int:
    return int((datetime.now(UTC) + RETENTION).timestamp())


def counters(deltas: dict[str, int]) -> UpdateExpression:
    """An update that moves these counters (``ADD``), to which fields may still be set."""
    update = UpdateExpression()
    for name, delta in deltas.items():
        update.add(name, delta)
    return update


def back_off(attempt: int) -> None:
    # Transaction conflicts are not retried by botocore; jittered, bounded backoff.
    time.sleep(backoff_seconds(attempt + 1, 0.05, 1.0))


class RunsTable:
    def __init__(self, table: Any) -> None:
        self.table = table
        self.client = table.meta.client
        self.name: str = table.name

    def header(self, run_id: str) -> RunHeader | None:
        item = self.item(run_id, HEADER)
        return RunHeader.model_validate(item) if item is not None else None

    def item(self, run_id: str, sk: str) -> dict[str, Any] | None:
        """One row of the run, strongly consistent; None if it does not exist."""
        response = self.table.get_item(Key={"run_id": run_id, "sk": sk}, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def add_issue(self, run_id: str, issue: str) -> None:
        self.table.update_item(
            Key={"run_id": run_id, "sk": HEADER},
            UpdateExpression="SET issues = list_append(if_not_exists(issues, :empty), :issue)",
            ExpressionAttributeValues={":issue": [issue], ":empty": []},
        )

    def client_update(
        self,
        run_id: str,
        client_id: str,
        deltas: dict[str, int],
        error: str | None = None,
        sets: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A transaction's update of a client's row: counters moved, fields set."""
        update = counters(deltas)
        sets = dict(sets or {})
        if error is not None:
            sets["error"] = error[:500]
        for name, value in sets.items():
            update.set(name, value)
        return {
            "Update": {
                "TableName": self.name,
                "Key": client_key(run_id, client_id),
                **update.arguments(),
            }
        }

    def transact_once(
        self,
        run_id: str,
        client_id: str,
        sk: str,
        marker: dict[str, Any],
        deltas: dict[str, int],
        error: str | None = None,
        sets: dict[str, Any] | None = None,
    ) -> bool:
        """Write a marker row and move the client's counters together; False if the marker
        existed (this was done before)."""
        put = {
            "Put": {
                "TableName": self.name,
                "Item": {"run_id": run_id, "sk": sk, "at": now(), "expires_at": expires_at()}
                | marker,
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }
        update = self.client_update(run_id, client_id, deltas, error, sets)
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[put, update])
                return True
            except ClientError as exc:
                reasons = failed_conditions(exc)
                if reasons[:1] == [True]:
                    return False
                if not transaction_cancelled(exc):
                    raise
                if not reasons and self.item(run_id, sk) is not None:
                    return False
                back_off(attempt)
        raise ConcurrentUpdateError(f"counting on run {run_id!r} kept conflicting")

    def query_prefix(self, run_id: str, prefix: str) -> list[dict[str, Any]]:
        """Every row of a run under a sort-key prefix, strongly consistent."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "run_id = :run AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":run": run_id, ":prefix": prefix},
            "ConsistentRead": True,
        }
        answered = pages(self.table.query, **kwargs)
        return [item for page in answered for item in page.get("Items", [])]

    def put_once(self, item: dict[str, Any]) -> bool:
        """Put a row unless it exists; False if it did."""
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return False
        return True
