"""Reading runs, for the API, the job-health page and the CLI: models, never raw rows."""

from collections.abc import Iterator, Sequence
from typing import Any

from jobkit.adapters.aws import batch_get
from jobkit.runs.models import HEADER, ClientRun, ItemRow, RunHeader, RunView, client_key
from jobkit.runs.outcome_packs import unpack
from jobkit.runs.table import RunsTable

Start = dict[str, Any] | None  # where a page starts: DynamoDB's LastEvaluatedKey
_PACKS_PER_READ = 10  # outcome packs per Query: up to 2,000 outcomes (~140 KB), under 1 MB


class RunQueries:
    def __init__(self, table: RunsTable) -> None:
        self._table = table

    def header(self, run_id: str) -> RunHeader | None:
        return self._table.header(run_id)

    def view(self, run_id: str) -> RunView | None:
        header = self.header(run_id)
        if header is None:
            return None
        rows = self._table.query_prefix(run_id, "CLIENT#")
        return RunView(header=header, clients=[ClientRun.model_validate(row) for row in rows])

    def client_rows(self, run_id: str, client_ids: Sequence[str]) -> dict[str, ClientRun]:
        """These clients' rows of a run, by client id (absent: not in the run). A key per
        client, so reading a few clients of a run of 100,000 reads a few rows."""
        keys = [client_key(run_id, client_id) for client_id in client_ids]
        found = batch_get(self._table.client, self._table.name, keys)
        rows = (ClientRun.model_validate(row) for row in found)
        return {row.client_id: row for row in rows}

    def clients_page(self, run_id: str, limit: int, start: Start) -> tuple[list[ClientRun], Start]:
        """One page of a run's client rows, by client id, and where the next starts."""
        rows, last = self._prefix_page(run_id, "CLIENT#", limit, start)
        return [ClientRun.model_validate(row) for row in rows], last

    def items(self, run_id: str) -> list[ItemRow]:
        return [item for row in self._table.query_prefix(run_id, "ITEM#") for item in unpack(row)]

    def items_page(
        self, run_id: str, outcome: str | None, limit: int, start: Start, prefix: str = "ITEM#"
    ) -> tuple[list[ItemRow], Start]:
        """One page of item outcomes (of every client, or of one: ``item_prefix``),
        optionally of one outcome, and where the next starts: a pack's key, or inside a pack
        ``<pack key>#<outcomes already shown>``."""
        page: list[ItemRow] = []
        for sk, index, item in self._outcomes_from(run_id, prefix, start):
            if outcome is not None and item.outcome.value != outcome:
                continue
            page.append(item)
            if len(page) == limit:
                return page, {"run_id": run_id, "sk": f"{sk}#{index + 1}"}
        return page, None

    def _outcomes_from(
        self, run_id: str, prefix: str, start: Start
    ) -> Iterator[tuple[str, int, ItemRow]]:
        """(pack key, index, outcome) in key order, from where a page token points."""
        sk = str((start or {}).get("sk", ""))
        pack, _, shown = sk.rpartition("#")
        if start and shown.isdigit() and pack.count("#") == 2:
            found = self._table.table.get_item(Key={"run_id": run_id, "sk": pack}).get("Item")
            if found is not None:
                yield from _indexed(pack, found, int(shown))
            start = {"run_id": run_id, "sk": pack}
        while True:
            rows, start = self._prefix_page(run_id, prefix, _PACKS_PER_READ, start)
            for row in rows:
                yield from _indexed(str(row["sk"]), row, 0)
            if not start:
                return

    def headers(self, run_ids: Sequence[str]) -> dict[str, RunHeader]:
        """These runs' headers by run id, read by key (absent: no such run)."""
        keys = [{"run_id": run_id, "sk": HEADER} for run_id in run_ids]
        found = batch_get(self._table.client, self._table.name, keys)
        headers = (RunHeader.model_validate(item) for item in found)
        return {header.run_id: header for header in headers}

    def client_runs(
        self, job_type: str, client_id: str, limit: int, before: str | None
    ) -> tuple[list[tuple[str, str]], bool]:
        """A client's runs of a job type, newest first, created before ``before`` (a
        ``run_order``): (run_order, run_id) pairs, and whether older ones remain."""
        condition = "client_job = :client_job"
        values: dict[str, Any] = {":client_job": f"{job_type}#{client_id}"}
        if before is not None:
            condition += " AND run_order < :before"
            values[":before"] = before
        page = self._table.table.query(
            IndexName="by-client",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        found = [(item["run_order"], item["run_id"]) for item in page.get("Items", [])]
        return found, "LastEvaluatedKey" in page

    def recent_runs(self, job_type: str, limit: int = 20) -> list[RunHeader]:
        return self.runs_page(job_type, limit, None)[0]

    def runs_page(self, job_type: str, limit: int, start: Start) -> tuple[list[RunHeader], Start]:
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
        page = self._table.table.query(**kwargs)
        runs = [RunHeader.model_validate(item) for item in page.get("Items", [])]
        return runs, page.get("LastEvaluatedKey")

    def _prefix_page(
        self, run_id: str, prefix: str, limit: int, start: Start
    ) -> tuple[list[dict[str, Any]], Start]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "run_id = :run AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":run": run_id, ":prefix": prefix},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self._table.table.query(**kwargs)
        return list(page.get("Items", [])), page.get("LastEvaluatedKey")


def _indexed(sk: str, row: dict[str, Any], first: int) -> Iterator[tuple[str, int, ItemRow]]:
    for index, item in enumerate(unpack(row)[first:], start=first):
        yield sk, index, item
