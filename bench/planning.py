"""Planning at scale: one scheduled fire of the bench-noop planner over 1,000 to 100,000
clients (config rows only), its seconds, seconds per client and peak memory.

The processor's event source is paused while the planner runs, and the run's page items are
purged after: on two cores, ten processor workers draining the page items as they arrive
would share the CPU the planner is measured on (on AWS they run on their own). The run is
cancelled at once either way.
"""

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from bench.poller import paused_event_sources
from jobkit.runs.ledger import open_ledger
from jobkit_cli.stack import LOCAL_CREDENTIALS, Stack

NOOP = "bench-noop"
SIZES = [int(n) for n in os.environ.get("JOBKIT_BENCH_PLAN_SIZES", "1000,10000,100000").split(",")]
Configure = Callable[[Stack, str, list[str]], None]
LAMBDA_MAX_TIMEOUT = 900
# The planner's peak memory over a time window (as its "run planned" line gives it), and
# the AWS requests it made then.
PlannerLogs = Callable[[Stack, float, float], tuple[int | None, dict[str, int]]]


def plan_at_scale(
    stack: Stack,
    configure: Configure,
    forget: Configure,
    planner_logs: PlannerLogs,
    api_reads: Callable[[Stack, str, list[str]], dict[str, Any]],
) -> dict[str, Any]:
    """Each size planned in turn, and the spread of the seconds per client over them.
    ``api_reads`` runs at 10,000 clients, while that run is open."""
    # A fresh worker's first fire pays its imports and first connections: one small fire
    # first, not measured, so each size is timed on a warm planner.
    by_size: dict[str, Any] = {}
    with _timeout_raised(stack) as deployed_timeout:
        plan_once(stack, 10, configure, forget, planner_logs, api_reads)
        for size in SIZES:
            by_size[str(size)] = plan_once(stack, size, configure, forget, planner_logs, api_reads)
    per_client = [figures["seconds_per_client"] for figures in by_size.values()]
    spread = (max(per_client) - min(per_client)) / statistics.mean(per_client)
    # What a Query page costs past the smallest size's is MiniStack's sort of the partition
    # (a DynamoDB Query page reads only its page): the seconds without it.
    base = by_size[str(SIZES[0])]["query_overhead_seconds"]
    for figures in by_size.values():
        extra = figures["config_query_pages"] * max(0.0, figures["query_overhead_seconds"] - base)
        figures["seconds_less_partition_sort"] = round(figures["seconds"] - extra, 1)
    less_sort = [f["seconds_less_partition_sort"] / f["clients"] for f in by_size.values()]
    spread_less_sort = (max(less_sort) - min(less_sort)) / statistics.mean(less_sort)
    return {
        "sizes": by_size,
        "seconds_per_client_spread": round(spread, 2),
        "seconds_per_client_spread_less_partition_sort": round(spread_less_sort, 2),
        "planner_timeout_seconds": deployed_timeout,
    }


def query_overhead_seconds(stack: Stack) -> float:
    """The median time of a one-row Query of the job's config partition: on MiniStack, the
    partition is copied and sorted for every page, whatever its size."""
    client = stack.client("dynamodb")
    table = stack.outputs["ConfigTableName"]
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        client.query(
            TableName=table,
            KeyConditionExpression="job_type = :job",
            ExpressionAttributeValues={":job": {"S": NOOP}},
            Limit=1,
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def plan_once(
    stack: Stack,
    clients: int,
    configure: Configure,
    forget: Configure,
    planner_logs: PlannerLogs,
    api_reads: Callable[[Stack, str, list[str]], dict[str, Any]],
) -> dict[str, Any]:
    ids = [f"plan{uuid.uuid4().hex[:6]}-{n:06d}" for n in range(clients)]
    configure(stack, NOOP, ids)
    overhead = query_overhead_seconds(stack)
    try:
        with _planning_alone(stack):
            planned, started, seconds = _fire(stack)
            figures: dict[str, Any] = {
                "clients": planned["clients"],
                "seconds": round(seconds, 1),
                "seconds_per_client": round(seconds / clients, 6),
            }
            if clients == 10_000:
                # While the run of every client is open: what ops read of it, through the API.
                figures["api_reads"] = api_reads(stack, planned["run_id"], ids)
            open_ledger(stack.table("RunsTableName")).lifecycle.cancel(planned["run_id"])
    finally:
        forget(stack, NOOP, ids)
    figures["peak_memory_mb"], requests = planner_logs(stack, started, started + seconds)
    figures["requests"] = requests
    # The config rows' Query pages (less the stale index's one query), each of which
    # MiniStack answers by sorting the job's whole partition first.
    figures["config_query_pages"] = max(0, requests.get("dynamodb.Query", 1) - 1)
    figures["query_overhead_seconds"] = round(overhead, 3)
    return figures


def _fire(stack: Stack) -> tuple[dict[str, Any], float, float]:
    """A scheduled fire, as Scheduler sends it: every client is due (none was planned by a
    schedule yet). One attempt, and time to finish: a retried invoke would plan twice."""
    lambda_client = boto3.client(
        "lambda",
        region_name=stack.region,
        endpoint_url=stack.endpoint_url,
        config=Config(read_timeout=900, retries={"max_attempts": 1}),
        **LOCAL_CREDENTIALS,  # type: ignore[call-overload]
    )
    fired_at = datetime.now(UTC).replace(microsecond=0)
    payload = {"trigger": "schedule", "scheduled_time": fired_at.isoformat()}
    started = time.time()
    response = lambda_client.invoke(
        FunctionName=stack.planners[NOOP], Payload=json.dumps(payload).encode()
    )
    seconds = time.time() - started
    planned: dict[str, Any] = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"planning failed: {planned}")
    return planned, started, seconds


@contextmanager
def _timeout_raised(stack: Stack) -> Iterator[int]:
    """The planner given Lambda's longest timeout while it is measured: a fire that takes
    longer than the deployed timeout is measured (and reported against it), not cut off."""
    lambda_client = stack.client("lambda")
    name = stack.planners[NOOP]
    deployed = lambda_client.get_function_configuration(FunctionName=name)["Timeout"]
    lambda_client.update_function_configuration(FunctionName=name, Timeout=LAMBDA_MAX_TIMEOUT)
    try:
        yield int(deployed)
    finally:
        lambda_client.update_function_configuration(FunctionName=name, Timeout=deployed)


@contextmanager
def _planning_alone(stack: Stack) -> Iterator[None]:
    """The processor paused meanwhile; the cancelled run's page items purged before it
    resumes."""
    with paused_event_sources(stack):
        try:
            yield
        finally:
            stack.client("sqs").purge_queue(QueueUrl=stack.outputs["WorkQueueUrl"])
