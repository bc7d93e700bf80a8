"""The processor's time budget on the local stack: fed batches of 50 as Lambda's poller does on
AWS (``bench/poller.py``, in place of MiniStack's event source, which hands at most 10) behind
a slow external system, no invocation reaches the 30 s timeout and the run closes exactly."""

import time
from typing import Any

import httpx
import pytest

from bench.poller import AwsSizedPoller
from jobkit.runs.models import FINAL_STATUSES, RunStatus
from jobkit.runs.queries import RunQueries
from jobkit_cli.logs import log_events
from jobkit_cli.runs_view import peek_dead_letters
from jobkit_cli.stack import Stack
from tests.integration.conftest import acks, fire, wait_for_run

pytestmark = pytest.mark.integration

# Every fetch and every acknowledgement of these clients takes 1 s: under the stack's 2 s
# client timeout (ExternalTimeoutSeconds), so nothing fails, it is only slow.
LATENCY_MS = 1000
# A batch of their 36 page items is 36 s of fetching, a batch of their record items up to 36
# acknowledgements of 1 s: neither fits the processor's 30 s, done one after another.
CLIENTS = 36
RECORDS = 2


def test_batches_of_50_behind_a_slow_external_system_return_in_time_and_the_run_closes(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    # Given 36 clients of 2 records each, behind an external system answering in 1 s
    clients = [new_client("budget", records=RECORDS) for _ in range(CLIENTS)]
    external.put(
        "/_admin/faults", json={"latency_ms": LATENCY_MS, "clients": clients}
    ).raise_for_status()
    since_ms = int(time.time() * 1000)
    with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
        planned = fire(stack, trigger="cli", client_ids=clients)

        def closed_or_failed() -> bool:
            header = runs.header(planned["run_id"])
            finished = header is not None and header.status in FINAL_STATUSES
            return finished or bool(poller.report.function_errors)

        # When the processor is fed batches of up to 50 until the run closes
        poller.run_until(closed_or_failed)
    report = poller.report
    # Then no invocation failed or timed out, batches were AWS-sized, none reported failures
    assert report.function_errors == [], report.as_dict()
    assert report.timeouts == 0
    assert report.largest_batch >= CLIENTS
    assert report.item_failures == 0
    # and the run closed with exact totals, every record acknowledged once
    records = CLIENTS * RECORDS
    view = wait_for_run(runs, planned["run_id"], timeout=30)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed, view.header.failed) == (
        records,
        records,
        0,
    )
    assert (view.header.dead_lettered, view.header.retries) == (0, 0)
    assert sum(acks(external, client) for client in clients) == records
    # and nothing of it reached the work DLQ, ours or the queue's redrive
    assert [d for d in peek_dead_letters(stack) if d.body.get("run_id") == planned["run_id"]] == []
    # because the processor stopped starting messages in time, and said so
    group = f"/aws/lambda/{stack.outputs['ProcessorFunctionName']}"
    stopped = [
        event["message"]
        for event in log_events(stack.client("logs"), group, start_ms=since_ms)
        if "time budget: batch stopped early" in event["message"]
    ]
    assert stopped, "no invocation stopped early: the batches were not too slow to finish"
