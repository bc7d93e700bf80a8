"""Counting, for the processor: pages received and item outcomes, each exactly once.

A page is counted with a marker row (``PAGE#<envelope>``) written with
``attribute_not_exists`` in the transaction that moves its client's counters, so a page
redelivered is never counted twice.

Item outcomes are counted a batch at a time: one outcome pack per client
(``jobkit.runs.outcome_packs``), written plainly, and the client's live counters moved in
one update. A message seen before (its receive count says so) may have been counted: its
envelope is looked up in the client's packs first. Whatever still counts twice (a crash
between the update and the pack) only moves the live counters; closing counts the packs'
union, so a closed client's totals, and the run's, are exact (``jobkit.runs.closing``).
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import condition_failed, transaction_cancelled
from jobkit.observability import logger
from jobkit.runs.closing import RunClosing
from jobkit.runs.models import (
    HEADER,
    ClientStatus,
    ItemOutcome,
    ItemRow,
    Outcome,
    PageSnapshot,
    RunHeader,
    client_key,
)
from jobkit.runs.outcome_packs import MAX_PACK, job_type_of, pack_row, pack_sk
from jobkit.runs.table import RunsTable, counters, expires_at, now

REDRIVEN = "r"  # the pack prefix of a redriven dead letter recounted after closing


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
        deltas = {"pages_open": -1, "dead_lettered": 1, "dead_pages": 1}
        sk = f"PAGE#{envelope_id}"
        if self._table.transact_once(run_id, client_id, sk, marker, deltas, error=reason):
            self._closing.try_close_client(run_id, client_id)

    def count_outcomes(
        self,
        run_id: str,
        client_id: str,
        outcomes: Sequence[ItemOutcome],
        redelivered: frozenset[str] = frozenset(),
    ) -> int:
        """Count each outcome once; returns how many were new."""
        by_client = {client_id: outcomes}
        return self.count_run_outcomes(run_id, by_client, redelivered).get(client_id, 0)

    def count_run_outcomes(
        self,
        run_id: str,
        outcomes_by_client: Mapping[str, Sequence[ItemOutcome]],
        redelivered: frozenset[str] = frozenset(),
    ) -> dict[str, int]:
        """Count each outcome of one run once, whichever clients they belong to; returns how
        many were new, per client. ``redelivered`` names the envelopes whose message came
        before (its receive count): only those can have been counted already."""
        counted: dict[str, int] = {}
        for client_id, outcomes in outcomes_by_client.items():
            # The same envelope twice in one batch (a duplicate delivery) counts once.
            unique = list({item.envelope_id: item for item in reversed(outcomes)}.values())
            counted[client_id] = self._count_client(run_id, client_id, unique[::-1], redelivered)
        return counted

    def add_to_client(self, run_id: str, client_id: str, **deltas: int) -> None:
        """Informational counters (retries, ack failures) that do not decide closing."""
        update = counters(deltas)
        self._table.table.update_item(Key=client_key(run_id, client_id), **update.arguments())

    def _count_client(
        self,
        run_id: str,
        client_id: str,
        outcomes: list[ItemOutcome],
        redelivered: frozenset[str],
    ) -> int:
        """The counters move first, then the pack is written: a crash between the two makes
        the message come again, redelivered, and count again. Counters that ran ahead only
        make closing look sooner; closing counts the packs' union, which is exact."""
        known: dict[str, ItemRow] | None = None
        if any(item.envelope_id in redelivered for item in outcomes):
            known = self._closing.settled(run_id, client_id)
        new = [item for item in outcomes if _changes(known, item)]
        if not new:
            return 0
        if not self._move_counters(run_id, client_id, _deltas(new, known or {})):
            return self._after_closing(run_id, client_id, new, known)
        at, job_type = now(), job_type_of(new)
        for start in range(0, len(new), MAX_PACK):
            row = pack_row(run_id, client_id, job_type, new[start : start + MAX_PACK], at)
            self._table.table.put_item(Item=row | {"expires_at": expires_at()})
        self._closing.try_close_client(run_id, client_id)
        return len(new)

    def _move_counters(self, run_id: str, client_id: str, deltas: dict[str, int]) -> bool:
        """Live progress, on the client's row while it is open; False once it closed."""
        try:
            self._table.table.update_item(
                Key=client_key(run_id, client_id),
                **_guarded(counters(deltas).arguments()),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def _after_closing(
        self,
        run_id: str,
        client_id: str,
        outcomes: list[ItemOutcome],
        known: dict[str, ItemRow] | None,
    ) -> int:
        """Outcomes that reach a closed client: a redriven dead letter that now succeeded
        moves its count from ``failed``; anything else was counted before closing."""
        if known is None:
            known = self._closing.settled(run_id, client_id)
        moved = 0
        for item in outcomes:
            if _changes(known, item) and item.envelope_id in known:
                moved += self._recount_redriven(run_id, client_id, item)
        return moved

    def _recount_redriven(self, run_id: str, client_id: str, item: ItemOutcome) -> int:
        """A dead-lettered item, redriven after its client closed, that now succeeded: its
        count moves out of ``failed`` on the client's row and the run's header.

        Its own pack (keyed by the envelope alone) is written under a condition in the same
        transaction, so a redelivered redrive moves nothing twice.
        """
        redriven = replace(item, reason=f"redriven: {item.reason}")
        row = pack_row(run_id, client_id, job_type_of([item]), [redriven], now())
        row["sk"] = pack_sk(client_id, [item.envelope_id], prefix=REDRIVEN)
        deltas = {Outcome.FAILED.value: -1, item.outcome.value: 1}
        writes = [
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": row | {"expires_at": expires_at()},
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            },
            self._table.client_update(run_id, client_id, deltas),
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": {"run_id": run_id, "sk": HEADER},
                    **counters(deltas).arguments(),
                }
            },
        ]
        try:
            self._table.client.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if transaction_cancelled(exc):
                return 0  # already recounted
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
        return 1


def _changes(known: dict[str, ItemRow] | None, item: ItemOutcome) -> bool:
    """Whether this outcome is news: not counted yet, or a failure it replaces."""
    before = (known or {}).get(item.envelope_id)
    if before is None:
        return True
    return before.outcome is Outcome.FAILED and item.outcome is not Outcome.FAILED


def _deltas(outcomes: list[ItemOutcome], known: dict[str, ItemRow]) -> dict[str, int]:
    deltas: dict[str, int] = Counter()
    for item in outcomes:
        deltas[item.outcome.value] += 1
        if item.envelope_id in known:  # a failure replaced: not an item more
            deltas[Outcome.FAILED.value] -= 1
        else:
            deltas["open_items"] -= 1
            deltas["dead_lettered"] += item.dead_lettered
    return {name: delta for name, delta in deltas.items() if delta}


def _guarded(arguments: dict[str, Any]) -> dict[str, Any]:
    """An update of a client's row that only an open client takes."""
    names = arguments["ExpressionAttributeNames"] | {"#status": "status"}
    values = arguments.get("ExpressionAttributeValues", {}) | {":done": ClientStatus.DONE.value}
    return arguments | {
        "ConditionExpression": "attribute_not_exists(#status) OR #status <> :done",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
