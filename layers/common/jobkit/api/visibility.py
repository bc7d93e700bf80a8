"""What a reader sees of the runs: every client's rows, or only those of some clients.

The API picks one per request from the caller's key (``jobkit.api.auth.Caller.runs_seen``);
the CLI reads every client. Seen through some clients, a run
is the rows of those clients: its totals are summed over them, its status is the one those
rows would give, its issues (which name other clients) are left out, and a run none of them
is in is not there at all.

Every read costs in proportion to what it shows, whatever the run's size: a client's row is
read by key, its item outcomes are one key range (``ITEM#<client>#``), and its runs come from the
``by-client`` index.
"""

from collections.abc import Sequence
from typing import Protocol

from jobkit.api.models import LIVE_CLIENT_ROWS, RunOut, run_out
from jobkit.api.paging import holding
from jobkit.api.responses import ApiError
from jobkit.runs.models import (
    COUNTERS,
    ClientRun,
    ClientStatus,
    ItemRow,
    RunHeader,
    RunStatus,
    RunView,
    final_status,
    item_prefix,
)
from jobkit.runs.queries import RunQueries, Start

_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS, RunStatus.FAILED})


class RunsSeen(Protocol):
    """The runs as one reader may see them; None and empty pages for what it may not."""

    def header(self, run_id: str) -> RunHeader | None: ...

    def run_out(self, header: RunHeader, client_rows: int = LIVE_CLIENT_ROWS) -> RunOut: ...

    def client_rows(self, run_id: str, client_ids: Sequence[str]) -> dict[str, ClientRun]: ...

    def clients_page(
        self, run_id: str, limit: int, start: Start
    ) -> tuple[list[ClientRun], Start]: ...

    def items_page(
        self, run_id: str, outcome: str | None, limit: int, start: Start
    ) -> tuple[list[ItemRow], Start]: ...

    def runs_page(
        self, job_type: str, limit: int, start: Start
    ) -> tuple[list[RunHeader], Start]: ...

    def recent_runs(self, job_type: str, limit: int) -> list[RunHeader]: ...


class EveryClient:
    """Every client's rows: admin-wide keys, the CLI."""

    def __init__(self, queries: RunQueries) -> None:
        self._queries = queries

    def header(self, run_id: str) -> RunHeader | None:
        return self._queries.header(run_id)

    def run_out(self, header: RunHeader, client_rows: int = LIVE_CLIENT_ROWS) -> RunOut:
        return run_out(self._queries, header, client_rows=client_rows)

    def client_rows(self, run_id: str, client_ids: Sequence[str]) -> dict[str, ClientRun]:
        return self._queries.client_rows(run_id, client_ids)

    def clients_page(self, run_id: str, limit: int, start: Start) -> tuple[list[ClientRun], Start]:
        return self._queries.clients_page(run_id, limit, start)

    def items_page(
        self, run_id: str, outcome: str | None, limit: int, start: Start
    ) -> tuple[list[ItemRow], Start]:
        return self._queries.items_page(run_id, outcome, limit, start)

    def runs_page(self, job_type: str, limit: int, start: Start) -> tuple[list[RunHeader], Start]:
        start = holding(start, "run_id", "sk", "job_type", "created_at")
        if start is not None and start["job_type"] != job_type:
            raise ApiError(404, "next: not a page token of this job type's runs")
        return self._queries.runs_page(job_type, limit, start)

    def recent_runs(self, job_type: str, limit: int) -> list[RunHeader]:
        return self._queries.recent_runs(job_type, limit)


class SomeClients:
    """Only these clients' rows, and the runs they are in."""

    def __init__(self, queries: RunQueries, clients: frozenset[str]) -> None:
        self._queries = queries
        self._clients = sorted(clients)
        # Each run's rows of these clients, read once per request (an instance serves one):
        # the header that shows a run, its body and the health page's recent results share them.
        self._rows: dict[str, dict[str, ClientRun]] = {}

    def header(self, run_id: str) -> RunHeader | None:
        header = self._queries.header(run_id)
        if header is None:
            return None
        self._rows.pop(run_id, None)  # read again with the header: a cancel may come between
        rows = self._own_rows(run_id)
        if not rows and not set(header.requested_clients) & set(self._clients):
            return None  # none of these clients is in it: it is not there for this reader
        return seen_through(header, rows)

    def run_out(self, header: RunHeader, client_rows: int = LIVE_CLIENT_ROWS) -> RunOut:
        rows = self._own_rows(header.run_id)
        return RunOut.of(RunView(header=header, clients=rows[:client_rows]))

    def client_rows(self, run_id: str, client_ids: Sequence[str]) -> dict[str, ClientRun]:
        self._own_rows(run_id)
        rows = self._rows[run_id]
        return {client_id: rows[client_id] for client_id in client_ids if client_id in rows}

    def _own_rows(self, run_id: str) -> list[ClientRun]:
        """These clients' rows of the run, by client id, read by key once."""
        if run_id not in self._rows:
            self._rows[run_id] = self._queries.client_rows(run_id, self._clients)
        return sorted(self._rows[run_id].values(), key=_by_id)

    def clients_page(self, run_id: str, limit: int, start: Start) -> tuple[list[ClientRun], Start]:
        """These clients' rows by client id, read by key a page's worth at a time."""
        after = str((start or {}).get("sk", "")).removeprefix("CLIENT#")
        pending = [client_id for client_id in self._clients if client_id > after]
        page: list[ClientRun] = []
        while pending and len(page) < limit:
            chunk, pending = pending[:limit], pending[limit:]
            found = self._queries.client_rows(run_id, chunk)
            page += sorted(found.values(), key=_by_id)
        page, more = page[:limit], len(page) > limit or bool(pending)
        last = {"run_id": run_id, "sk": f"CLIENT#{page[-1].client_id}"} if page and more else None
        return page, last

    def items_page(
        self, run_id: str, outcome: str | None, limit: int, start: Start
    ) -> tuple[list[ItemRow], Start]:
        """These clients' item outcomes, one client's key range after another."""
        resume_client = _item_client(start)
        page: list[ItemRow] = []
        for client_id in self._clients:
            if resume_client is not None and client_id < resume_client:
                continue
            from_key = start if client_id == resume_client else None
            rows, last = self._queries.items_page(
                run_id, outcome, limit - len(page), from_key, prefix=item_prefix(client_id)
            )
            page += rows
            if len(page) >= limit:
                return page, last
        return page, None

    def runs_page(self, job_type: str, limit: int, start: Start) -> tuple[list[RunHeader], Start]:
        """The runs any of these clients is in, newest first."""
        start = holding(start, "before")
        before = str(start["before"]) if start else None
        shown, more = self._newest_runs(job_type, limit, before)
        headers = self._queries.headers([run_id for run_id, _ in shown])
        seen = [self._seen(headers[run_id]) for run_id, _ in shown if run_id in headers]
        return seen, {"before": shown[-1][1]} if shown and more else None

    def _newest_runs(
        self, job_type: str, limit: int, before: str | None
    ) -> tuple[list[tuple[str, str]], bool]:
        """The ``limit`` newest (run id, run order) of these clients' runs created before
        ``before``, and whether older ones remain: each client's newest ``limit``, merged."""
        orders: dict[str, str] = {}
        more = False
        for client_id in self._clients:
            found, client_more = self._queries.client_runs(job_type, client_id, limit, before)
            more = more or client_more
            orders.update((run_id, run_order) for run_order, run_id in found)
        newest = sorted(orders.items(), key=lambda item: item[1], reverse=True)
        return newest[:limit], more or len(newest) > limit

    def recent_runs(self, job_type: str, limit: int) -> list[RunHeader]:
        return self.runs_page(job_type, limit, None)[0]

    def _seen(self, header: RunHeader) -> RunHeader:
        return seen_through(header, self._own_rows(header.run_id))


def seen_through(header: RunHeader, rows: Sequence[ClientRun]) -> RunHeader:
    """The run as these client rows make it: their totals and client counts, the status
    they would give a finished run, and no issues (they name other clients)."""
    totals = {name: sum(getattr(row, name) for row in rows) for name in COUNTERS}
    closed = [row for row in rows if row.status in (ClientStatus.DONE, ClientStatus.INVALID_CONFIG)]
    seen = header.model_copy(
        update={
            **totals,
            "clients": len(rows),
            "clients_done": len(closed),
            "clients_failed": sum(row.result in ("FAILED", "INVALID_CONFIG") for row in closed),
            "issues": [],
        }
    )
    if header.status in _FINISHED:
        seen.status = final_status(seen)
    return seen


def _by_id(row: ClientRun) -> str:
    return row.client_id


def _item_client(start: Start) -> str | None:
    """The client of an item page token (``ITEM#<client>#<pack>``, maybe ``#<shown>``)."""
    sk = str((start or {}).get("sk", ""))
    parts = sk.split("#")
    return parts[1] if len(parts) in (3, 4) and parts[0] == "ITEM" else None
