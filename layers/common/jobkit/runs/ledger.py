"""The run ledger, in the parts its callers use: one part per group of callers.

  lifecycle    the planner and the API: open, plan, mark running, cancel
  counting     the processor: pages and outcomes, exactly once per envelope
  retry_state  the client-level retries: park, resume, delay, poison
  queries      the API, the job-health page and the CLI: runs and rows, as models

They share the table and the closing of clients and runs (``jobkit.runs.closing``).
"""

from dataclasses import dataclass
from typing import Any

from jobkit.runs.closing import ClientClosed, RunClosing, RunFinished
from jobkit.runs.counting import OutcomeCounting
from jobkit.runs.lifecycle import RunLifecycle
from jobkit.runs.queries import RunQueries
from jobkit.runs.report import report_run_finished
from jobkit.runs.retry_state import ClientRetryState
from jobkit.runs.table import RunsTable


@dataclass(frozen=True)
class Ledger:
    lifecycle: RunLifecycle
    counting: OutcomeCounting
    retry_state: ClientRetryState
    queries: RunQueries


def open_ledger(
    table: Any,
    on_client_closed: ClientClosed | None = None,
    on_run_finished: RunFinished = report_run_finished,
) -> Ledger:
    """The ledger over the Runs table (a ``jobkit.adapters.aws.Table``); ``on_client_closed``
    tells the health bookkeeping (``jobkit.runs.client_health``) of each closed client."""
    runs = RunsTable(table)
    closing = RunClosing(runs, on_run_finished, on_client_closed)
    return Ledger(
        lifecycle=RunLifecycle(runs, closing),
        counting=OutcomeCounting(runs, closing),
        retry_state=ClientRetryState(runs, closing),
        queries=RunQueries(runs),
    )
