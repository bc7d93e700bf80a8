"""Planning at scale: one scheduled fire of the bench-noop planner over 1,000 to 100,000
clients (config rows only), in shards of AWS's size (the template's default), its seconds
(until the last shard marked the run running), seconds per client and peak memory.

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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from bench.logs import FunctionLogs, read_logs
from bench.poller import paused_event_sources
from bench.workload import NOOP, REAL, configure_clients, forget_clients
from jobkit.adapters.keys import KeyStore, Scope
from jobkit.runs.ledger import open_ledger
from jobkit_cli.api_client import api_url
from jobkit_cli.stack import LOCAL_CREDENTIALS, Stack, load_local_state

SIZES = [int(n) for n in os.environ.get("JOBKIT_BENCH_PLAN_SIZES", "1000,10000,100000").split(",")]
LAMBDA_MAX_TIMEOUT = 900
# The template's PlanShardClients default, as deployed on AWS (the local stack plans 100 per
# shard, so that its tests plan in shards).
AWS_SHARD_CLIENTS = 10_000


def plan_at_scale(stack: Stack) -> dict[str, Any]:
    """Each size planned in turn, and the spread of the seconds per client over them. At
    10,000 clients, what ops read of the run while it is open."""
    # A fresh worker's first fire pays its imports and first connections: one small fire
    # first, not measured, so each size is timed on a warm planner.
    by_size: dict[str, Any] = {}
    with _sized_as_on_aws(stack) as deployed_timeout:
        plan_once(stack, 10)
        for size in SIZES:
            by_size[str(size)] = plan_once(stack, size)
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
        "shard_clients": AWS_SHARD_CLIENTS,
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


def plan_once(stack: Stack, clients: int) -> dict[str, Any]:
    ids = [f"plan{uuid.uuid4().hex[:6]}-{n:06d}" for n in range(clients)]
    configure_clients(stack, NOOP, ids)
    overhead = query_overhead_seconds(stack)
    try:
        with _planning_alone(stack):
            emulator_cpu = emulator_cpu_seconds()
            planned, started, seconds = _fire(stack, clients)
            emulator_cpu = emulator_cpu_seconds() - emulator_cpu
            figures: dict[str, Any] = {
                "clients": planned["clients"],
                "seconds": round(seconds, 1),
                "seconds_per_client": round(seconds / clients, 6),
            }
            if clients == 10_000:
                # While the run of every client is open: what ops read of it, through the API.
                figures["api_reads"] = _api_reads(stack, planned["run_id"], ids)
            open_ledger(stack.table("RunsTableName")).lifecycle.cancel(planned["run_id"])
    finally:
        forget_clients(stack, NOOP, ids)
    logs = read_logs(stack, started, started + seconds).get("PlannerBenchNoop", FunctionLogs())
    requests = dict(sorted(logs.requests.items()))
    figures["peak_memory_mb"] = logs.max_memory_used_mb or None
    figures["requests"] = requests
    # Where the fire's time went, on two cores: the planner's own CPU (its "run planned"
    # line) and the emulator's. MiniStack is one Python process, so its CPU seconds are a
    # floor under the fire's duration however the planner's work is split.
    figures["planner_cpu_seconds"] = round(logs.cpu_seconds, 2) or None
    figures["shards"] = logs.shards
    figures["memory_size_mb"] = logs.memory_mb or None
    figures["emulator_cpu_seconds"] = round(emulator_cpu, 1)
    # The config rows' Query pages (less the stale index's one query), each of which
    # MiniStack answers by sorting the job's whole partition first.
    figures["config_query_pages"] = max(0, requests.get("dynamodb.Query", 1) - 1)
    figures["query_overhead_seconds"] = round(overhead, 3)
    return figures


def emulator_cpu_seconds() -> float:
    """The CPU seconds (user and system, every thread) MiniStack's process has used so far."""
    state = load_local_state()
    assert state is not None, "the local stack is not up"
    fields = Path(f"/proc/{state.ministack_pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def _api_reads(stack: Stack, run_id: str, client_ids: list[str]) -> dict[str, dict[str, float]]:
    """Seconds and response size of GET /health and GET /runs/{id} with every client planned:
    both must stay within API Gateway's 29 s and Lambda's 6 MB whatever the client count.

    The health page shows the job types the API serves, which bench-noop is not: the same
    clients are configured for the real job too, disabled (nothing plans them), meanwhile.
    """
    configure_clients(stack, REAL, client_ids, enabled=False)
    keys = KeyStore(stack.table("KeysTableName"))
    key, plaintext = keys.create("bench", {Scope.READ})
    figures: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(
            base_url=api_url(stack), headers={"x-api-key": plaintext}, timeout=120
        ) as client:
            for name, path in (("health", "/health"), ("run", f"/runs/{run_id}")):
                started = time.monotonic()
                response = client.get(path)
                response.raise_for_status()
                figures[name] = {
                    "seconds": round(time.monotonic() - started, 2),
                    "kilobytes": round(len(response.content) / 1024, 1),
                }
    finally:
        keys.revoke(key.key_id)
        forget_clients(stack, REAL, client_ids)
    return figures


def _fire(stack: Stack, clients: int) -> tuple[dict[str, Any], float, float]:
    """A scheduled fire, as Scheduler sends it: every client is due (none was planned by a
    schedule yet). One attempt, and time to finish: a retried invoke would plan twice. Its
    seconds run until the run is running: its last shard planned."""
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
    planned: dict[str, Any] = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"planning failed: {planned}")
    lifecycle = open_ledger(stack.table("RunsTableName")).lifecycle
    deadline = started + LAMBDA_MAX_TIMEOUT * (1 + clients // AWS_SHARD_CLIENTS)
    while (header := lifecycle.header(planned["run_id"])) is None or header.started_at is None:
        if time.time() > deadline:
            raise RuntimeError(f"planning of {planned['run_id']} not done: {header}")
        time.sleep(0.2)
    planned["clients"] = header.clients
    return planned, started, header.started_at.timestamp() - started


@contextmanager
def _sized_as_on_aws(stack: Stack) -> Iterator[int]:
    """The planner planning AWS's shards while it is measured, and given Lambda's longest
    timeout: a shard that takes longer than the deployed timeout is measured (and reported
    against it), not cut off."""
    lambda_client = stack.client("lambda")
    name = stack.planners[NOOP]
    deployed = lambda_client.get_function_configuration(FunctionName=name)
    variables = deployed["Environment"]["Variables"]
    lambda_client.update_function_configuration(
        FunctionName=name,
        Timeout=LAMBDA_MAX_TIMEOUT,
        Environment={"Variables": {**variables, "PLAN_SHARD_CLIENTS": str(AWS_SHARD_CLIENTS)}},
    )
    try:
        yield int(deployed["Timeout"])
    finally:
        lambda_client.update_function_configuration(
            FunctionName=name, Timeout=deployed["Timeout"], Environment={"Variables": variables}
        )


@contextmanager
def _planning_alone(stack: Stack) -> Iterator[None]:
    """The processor paused meanwhile; the cancelled run's page items purged before it
    resumes."""
    with paused_event_sources(stack):
        try:
            yield
        finally:
            stack.client("sqs").purge_queue(QueueUrl=stack.outputs["WorkQueueUrl"])
