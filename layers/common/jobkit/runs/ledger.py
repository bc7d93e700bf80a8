"""The run ledger, in the parts its callers use: one part per group of callers.

  lifecycle    the planner and the API: open, plan, mark running, cancel
  shards       the planner: a run planned a range of clients per invocation
  counting     the processor: pages and outcomes, exactly once per envelope
  retry_state  the client-level retries: park, resume, delay, poison
  queries      the API, the job-health page and the CLI: runs and rows, as models

They share the table and the closing of clients and runs (``jobkit.runs.closing``). Each part
is built, and its module imported, when its caller first asks for it: a function's cold start
loads only the parts it uses.
"""

from functools import cached_property
from typing import TYPE_CHECKING, Any

from jobkit.runs.closing import ClientClosed, RunClosing, RunFinished
from jobkit.runs.report import report_run_finished
from jobkit.runs.table import RunsTable

if TYPE_CHECKING:
    from jobkit.runs.counting import OutcomeCounting
    from jobkit.runs.lifecycle import RunLifecycle
    from jobkit.runs.queries import RunQueries
    from jobkit.runs.retry_state import ClientRetryState
    from jobkit.runs.shards import RunShards


class Ledger:
    def __init__(self, runs: RunsTable, closing: RunClosing) -> None:
        self._runs = runs
        self._closing = closing

    @cached_property
    def lifecycle(self) -> "RunLifecycle":
        from jobkit.runs.lifecycle import RunLifecycle

        return RunLifecycle(self._runs, self._closing)

    @cached_property
    def shards(self) -> "RunShards":
        from jobkit.runs.shards import RunShards

        return RunShards(self._runs)

    @cached_property
    def counting(self) -> "OutcomeCounting":
        from jobkit.runs.counting import OutcomeCounting

        return OutcomeCounting(self._runs, self._closing)

    @cached_property
    def retry_state(self) -> "ClientRetryState":
        from jobkit.runs.retry_state import ClientRetryState

        return ClientRetryState(self._runs, self._closing)

    @cached_property
    def queries(self) -> "RunQueries":
        from jobkit.runs.queries import RunQueries

        return RunQueries(self._runs)


def open_ledger(
    table: Any,
    on_client_closed: ClientClosed | None = None,
    on_run_finished: RunFinished = report_run_finished,
) -> Ledger:
    """The ledger over the Runs table (a ``jobkit.adapters.aws.Table``); ``on_client_closed``
    tells the health bookkeeping (``jobkit.runs.client_health``) of each closed client."""
    runs = RunsTable(table)
    return Ledger(runs, RunClosing(runs, on_run_finished, on_client_closed))
