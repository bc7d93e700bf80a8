"""A client's retry state on its run, for the client-level retries (``jobkit.pipeline.retry``
and the retry worker): parked while a retry waits, resumed when it runs, delayed while its
circuit stays open, poisoned past the cap."""

from jobkit.runs.closing import RunClosing
from jobkit.runs.models import ClientStatus, RunHeader, client_key
from jobkit.runs.table import RunsTable


class ClientRetryState:
    def __init__(self, table: RunsTable, closing: RunClosing) -> None:
        self._table = table
        self._closing = closing

    def header(self, run_id: str) -> RunHeader | None:
        return self._table.header(run_id)

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
        return self._table.transact_once(
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
        return self._table.transact_once(
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
        self._table.table.update_item(
            Key=client_key(run_id, client_id),
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
        self._table.table.update_item(
            Key=client_key(run_id, client_id),
            UpdateExpression="SET #status = :running, #error = :reason REMOVE next_retry_at",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":running": ClientStatus.RUNNING.value,
                ":reason": reason[:500],
            },
        )
        self._table.add_issue(run_id, f"client {client_id}: poison: {reason}"[:1000])
        self._closing.try_close_client(run_id, client_id)
