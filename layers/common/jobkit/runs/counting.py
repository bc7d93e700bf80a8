"""Counting, for the processor: pages received and item outcomes, each exactly once.

An outcome row (``ITEM#<client>#<envelope>``) is written with ``attribute_not_exists`` in the
same transaction that moves the client's counters, so a redelivered item is never counted
twice.
A batch's outcomes of one run go in one transaction per hundred items, whichever clients they
belong to. A client closes when its pages are all fetched and every received item has an
outcome (``jobkit.runs.closing``).
"""

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import error_code, failed_conditions, transaction_cancelled
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.errors import ConcurrentUpdateError
from jobkit.observability import logger
from jobkit.runs.closing import RunClosing
from jobkit.runs.models import (
    HEADER,
    ClientStatus,
    ItemOutcome,
    Outcome,
    PageSnapshot,
    RunHeader,
    client_key,
    item_sk,
)
from jobkit.runs.table import CONFLICT_ATTEMPTS, RunsTable, back_off, expires_at, now

_MAX_TRANSACT_ITEMS = 100
Pending = list[tuple[str, ItemOutcome]]  # (client id, outcome), one run's


class OutcomeCounting:
    def __init__(self, table: RunsTable, closing: RunClosing) -> None:
        self._table = table
        self._closing = closing

    def header(self, run_id: str) -> RunHeader | None:
        return self._table.header(run_id)

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
            if self._table.transact_once(run_id, client_id, sk, marker, {"pages_open": 1}):
                return snapshot
        else:
            item = {"run_id": run_id, "sk": sk, "expires_at": expires_at(), **marker}
            if self._table.put_once(item):
                return snapshot
        stored = self._table.table.get_item(Key={"run_id": run_id, "sk": sk}, ConsistentRead=True)[
            "Item"
        ]
        return PageSnapshot(
            record_ids=tuple(stored.get("record_ids", [])),
            next_cursor=stored.get("next_cursor"),
            resume_at=stored.get("resume_at"),
        )

    def count_page(
        self, run_id: str, client_id: str, envelope_id: str, page_number: int, records: int
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
        if self._table.transact_once(run_id, client_id, f"PAGE#{envelope_id}", marker, deltas):
            self._closing.try_close_client(run_id, client_id)

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
        sk = f"PAGE#{envelope_id}"
        if self._table.transact_once(run_id, client_id, sk, marker, deltas, error=reason):
            self._closing.try_close_client(run_id, client_id)

    def count_outcomes(self, run_id: str, client_id: str, outcomes: Sequence[ItemOutcome]) -> int:
        """Count each outcome once; returns how many were new."""
        return self.count_run_outcomes(run_id, {client_id: outcomes}).get(client_id, 0)

    def count_run_outcomes(
        self, run_id: str, outcomes_by_client: Mapping[str, Sequence[ItemOutcome]]
    ) -> dict[str, int]:
        """Count each outcome of one run once, whichever clients they belong to; returns how
        many were new, per client."""
        pending: Pending = []
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
                self._closing.try_close_client(run_id, client_id)
        return dict(counted)

    def add_to_client(self, run_id: str, client_id: str, **deltas: int) -> None:
        """Informational counters (retries, ack failures) that do not decide closing."""
        update = UpdateExpression()
        for name, delta in deltas.items():
            update.add(name, delta)
        self._table.table.update_item(Key=client_key(run_id, client_id), **update.arguments())

    def _count_chunk(self, run_id: str, outcomes: Pending) -> Counter[str]:
        """How many outcomes were new, per client."""
        pending = outcomes
        for attempt in range(CONFLICT_ATTEMPTS):
            if not pending:
                return Counter()
            try:
                self._table.client.transact_write_items(
                    TransactItems=self._outcome_writes(run_id, pending)
                )
                return Counter(client_id for client_id, _ in pending)
            except ClientError as exc:
                remaining = self._without_duplicates(exc, run_id, pending)
            if remaining is None:
                # No per-item reasons to tell duplicates apart: count one by one.
                return sum((self._count_chunk(run_id, [one]) for one in pending), Counter())
            if len(remaining) == len(pending):
                back_off(attempt)  # a conflict, not a duplicate: try the same again
            pending = remaining
        raise ConcurrentUpdateError(f"counting on run {run_id!r} kept conflicting")

    def _outcome_writes(self, run_id: str, pending: Pending) -> list[dict[str, Any]]:
        """The markers first (CancellationReasons index them), then one update per client."""
        deltas: dict[str, dict[str, int]] = {}
        for client_id, item in pending:
            client = deltas.setdefault(client_id, {"open_items": 0})
            client["open_items"] -= 1
            client[item.outcome.value] = client.get(item.outcome.value, 0) + 1
            if item.dead_lettered:
                client["dead_lettered"] = client.get("dead_lettered", 0) + 1
        markers = [self._marker_put(run_id, client_id, item) for client_id, item in pending]
        updates = [
            self._table.client_update(run_id, client_id, d) for client_id, d in deltas.items()
        ]
        return [*markers, *updates]

    def _without_duplicates(
        self, exc: ClientError, run_id: str, pending: Pending
    ) -> Pending | None:
        """What is left to count after a cancelled transaction; None if it cannot tell."""
        if not transaction_cancelled(exc):
            raise exc
        reasons = failed_conditions(exc)
        if reasons:
            duplicates = {index for index, failed in enumerate(reasons[: len(pending)]) if failed}
        elif len(pending) == 1:
            client_id, item = pending[0]
            counted = self._table.exists(run_id, item_sk(client_id, item.envelope_id))
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
        flip = _flip_from_failed(self._table.name, run_id, client_id, item)
        update = self._table.client_update(run_id, client_id, deltas)
        try:
            self._table.client.transact_write_items(TransactItems=[flip, update])
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
        client = self._table.table.get_item(
            Key=client_key(run_id, client_id), ConsistentRead=True
        ).get("Item", {})
        if client.get("status") == ClientStatus.DONE.value:
            # The client's totals were already rolled up into the header: move them there too.
            self._table.table.update_item(
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
                    "sk": item_sk(client_id, item.envelope_id),
                    "client_id": client_id,
                    "record_id": item.record_id,
                    "item_key": item.item_key,
                    "outcome": item.outcome.value,
                    "reason": item.reason,
                    "dead_lettered": item.dead_lettered,
                    "at": now(),
                    "expires_at": expires_at(),
                },
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }


def _flip_from_failed(table: str, run_id: str, client_id: str, item: ItemOutcome) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"run_id": run_id, "sk": item_sk(client_id, item.envelope_id)},
            "UpdateExpression": "SET outcome = :new, reason = :reason, redriven_at = :now",
            "ConditionExpression": "outcome = :failed",
            "ExpressionAttributeValues": {
                ":new": item.outcome.value,
                ":failed": Outcome.FAILED.value,
                ":reason": f"redriven: {item.reason}",
                ":now": now(),
            },
        }
    }


def _transaction_chunks(pending: Pending) -> Iterator[Pending]:
    """Markers plus one update per client present, at most 100 items per transaction."""
    chunk: Pending = []
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
