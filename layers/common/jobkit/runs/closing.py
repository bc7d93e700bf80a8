"""Closing: a client's part of a run when its pages are fetched and its items counted, and
the run when its last client closes. Every part of the ledger that counts calls it.

The run's completion (its metrics and log line) and each client's health are reported through
callbacks, so the ledger writes rows and nothing else (``jobkit.runs.report``,
``jobkit.runs.client_health``).
"""

from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from jobkit.adapters.aws import condition_failed
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.observability import logger
from jobkit.runs.models import (
    COUNTERS,
    HEADER,
    ClientRun,
    ClientStatus,
    ItemRow,
    RunHeader,
    RunStatus,
    client_key,
    final_status,
    item_prefix,
)
from jobkit.runs.outcome_packs import settled, totals
from jobkit.runs.table import RunsTable, now

ClientClosed = Callable[[RunHeader, ClientRun], object]
RunFinished = Callable[[RunHeader, RunStatus, datetime], object]


class RunClosing:
    def __init__(
        self,
        table: RunsTable,
        on_run_finished: RunFinished,
        on_client_closed: ClientClosed | None = None,
    ) -> None:
        self._table = table
        self._on_run_finished = on_run_finished
        self._on_client_closed = on_client_closed

    def try_close_client(self, run_id: str, client_id: str) -> bool:
        """Close the client's part of the run if every page is fetched and every item counted.

        Called after every count, and almost always too early: a strongly consistent read of
        the live counters decides whether counting the outcome packs is worth it. Those
        counters can only run ahead (an outcome counted twice), never behind, so the last
        count of a client always sees it closable. The packs' union decides, and its totals
        are what the row closes with; the write's condition decides between racers.
        """
        row = self._closable(run_id, client_id)
        if row is None:
            return False
        outcomes = self.settled(run_id, client_id)
        if len(outcomes) < row.received:
            return False  # a duplicate moved the counters; an outcome is still to come
        exact = totals(outcomes.values())
        exact["dead_lettered"] += row.dead_pages
        update = UpdateExpression()
        for name, value in {**exact, "open_items": 0, "finished_at": now()}.items():
            update.set(name, value)
        update.set("status", ClientStatus.DONE.value)
        arguments = update.arguments()
        try:
            response = self._table.table.update_item(
                Key=client_key(run_id, client_id),
                ConditionExpression="#s = :running AND pages_open = :zero",
                ExpressionAttributeNames=arguments["ExpressionAttributeNames"] | {"#s": "status"},
                ExpressionAttributeValues=arguments["ExpressionAttributeValues"]
                | {":running": ClientStatus.RUNNING.value, ":zero": 0},
                UpdateExpression=arguments["UpdateExpression"],
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        self._roll_up(run_id, ClientRun.model_validate(response["Attributes"]))
        return True

    def settled(self, run_id: str, client_id: str) -> dict[str, ItemRow]:
        """The client's outcome of each envelope, over its outcome packs (strongly read)."""
        return settled(self._table.query_prefix(run_id, item_prefix(client_id)))

    def _closable(self, run_id: str, client_id: str) -> ClientRun | None:
        current = self._table.table.get_item(
            Key=client_key(run_id, client_id),
            ConsistentRead=True,
            ProjectionExpression="client_id, #status, pages_open, open_items, received, dead_pages",
            ExpressionAttributeNames={"#status": "status"},
        ).get("Item")
        if current is None:
            return None
        row = ClientRun.model_validate({"client_id": client_id, **current})
        if row.status is ClientStatus.RUNNING and row.pages_open == 0 and row.open_items <= 0:
            return row
        return None

    def _roll_up(self, run_id: str, row: ClientRun) -> None:
        update = UpdateExpression()
        for name in COUNTERS:
            update.add(name, getattr(row, name))
        update.add("clients_done", 1)
        update.add("clients_failed", 1 if row.result == "FAILED" else 0)
        response = self._table.table.update_item(
            Key={"run_id": run_id, "sk": HEADER}, ReturnValues="ALL_NEW", **update.arguments()
        )
        header = RunHeader.model_validate(response["Attributes"])
        self.client_closed(header, row)
        self.maybe_finish(header)

    def client_closed(self, header: RunHeader, row: ClientRun) -> None:
        """Tell the health bookkeeping a client's part of the run is over."""
        if self._on_client_closed is None:
            return
        try:
            self._on_client_closed(header, row)
        except Exception:  # noqa: BLE001 - health bookkeeping must not stop a run closing
            logger.exception("recording client health failed", extra={"client_id": row.client_id})

    def maybe_finish(self, header: RunHeader) -> None:
        """The run's final status once its last client closed (once: a guarded write)."""
        if header.status is not RunStatus.RUNNING or header.clients_done < header.clients:
            return
        final = final_status(header)
        finished_at = datetime.now(UTC)
        try:
            self._table.table.update_item(
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
        self._on_run_finished(header, final, finished_at)
