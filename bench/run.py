"""`make bench`: what a record costs, measured on the local stack.

1. Requests per record: every AWS SDK call of every function, counted at the SDK (each
   invocation logs its counts when the stack runs with LogRequestCounts=true), by function,
   service and operation; DynamoDB capacity units by table; external HTTP calls (the fake
   external system's own counts).
2. Cost per 1M records on AWS, and the naive build's (bench/cost.py says how).
3. Throughput of sync-completed-records and of bench-noop (no rule) through the same
   pipeline: throughput_ratio = real / no-op.
4. Backfill interference: a scheduled run's time per record beside a backfill of the same
   size, over its time alone (bench/backfill.py).
5. Cold start: import time of the processor and planner modules against a baseline handler,
   both in a Lambda-like interpreter (no site-packages: the built layer plus boto3).
6. Scale: planning 10,000 clients, and GET /health and GET /runs/{id} with them open; time
   per record at 1k, 10k and 30k records; p50/p95 latency from enqueue to counted (the
   processor's RecordLatency metric).

Writes bench/results.json and prints tables. Benchmarks measure; tests never assert timings.
Sizes can be lowered for a quick look: JOBKIT_BENCH_SIZES=1000 JOBKIT_BENCH_PLAN_SIZES=500,1000.
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from rich.console import Console
from rich.table import Table

from bench.backfill import backfill_interference
from bench.cost import DYNAMODB_WRITE_UNIT, FLOOR_WRITE_UNITS, MILLION, Batching, Usage, naive
from bench.planning import SIZES as PLAN_SIZES
from bench.planning import plan_at_scale
from bench.poller import AwsSizedPoller
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.keys import KeyStore, Scope
from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import FINAL_STATUSES
from jobkit_cli import localstack
from jobkit_cli.api_client import api_url
from jobkit_cli.logs import function_log_groups, log_events
from jobkit_cli.seed import external_admin, seed_client
from jobkit_cli.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
REAL, NOOP = "sync-completed-records", "bench-noop"
CLIENTS = 10
SIZES = [int(n) for n in os.environ.get("JOBKIT_BENCH_SIZES", "1000,10000,30000").split(",")]
BACKFILL_RECORDS = int(os.environ.get("JOBKIT_BENCH_BACKFILL_RECORDS", "5000"))
IMPORT_SAMPLES = 15

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
# Their event sources poll the queue and delete what was handled: SQS requests too.
SQS_TRIGGERED = {"Processor", "WebhookMatcher", "WebhookDelivery"}
# What domain events cost beyond the bus: matching them to subscriptions, and delivering.
DOMAIN_EVENT_FUNCTIONS = {"WebhookMatcher", "WebhookDelivery"}
GOALS: dict[str, tuple[str, float]] = {
    "cost_floor_ratio": ("<=", 1.2),
    "import_ratio_over_baseline_with_pydantic": ("<=", 1.05),
    "plan_100k_seconds": ("<=", 60.0),
    "plan_seconds_per_client_spread": ("<=", 0.15),
    "backfill_interference": ("<=", 1.25),
    "dynamodb_writes_per_item": ("<=", 3.2),
    "sqs_requests_per_item": ("<=", 0.25),
    "external_calls_per_item": ("<=", 0.15),
    "throughput_ratio": (">=", 0.6),
    "time_per_record_spread": ("<=", 0.15),
    "timeouts": ("<=", 0),
}

# What any handler of this design sets up: Powertools' logger, metrics, tracer, an SQS batch
# processor, idempotency on DynamoDB, and one boto3 client.
BASELINE = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, idempotent_function,
)
import boto3
Logger(); Metrics(); Tracer(); BatchProcessor(event_type=EventType.SQS)
DynamoDBPersistenceLayer(table_name="idempotency", boto3_client=boto3.client("dynamodb"))
"""
# The same, with pydantic imported and one model built: the stack's own boundary library,
# which every implementation of this design loads too. Reported next to the ratio.
BASELINE_WITH_PYDANTIC = (
    BASELINE + "import pydantic\nclass Model(pydantic.BaseModel):\n    value: int\n"
)
# The Lambda Python runtime ships boto3 and its dependencies; the layer brings the rest.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
_REPORT = re.compile(r"Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB")


@dataclass
class Run:
    job: str
    run_id: str
    records: int
    seconds: float
    started: float
    ended: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


@dataclass
class FunctionLogs:
    requests: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)  # EventBridge bills per entry
    billed_ms: int = 0
    invocations: int = 0
    memory_mb: int = 0
    # The planner's own peak (its "run planned" line, jobkit.tooling.peak_memory): MiniStack's
    # REPORT lines give the peak of its finished child processes, not the function's.
    max_memory_used_mb: int = 0
    log_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _function_name(stack: Stack, group: str) -> str:
    name = group.removeprefix("/aws/lambda/").removeprefix(f"{stack.name}-")
    return re.sub(r"-[A-Z0-9]{8,}$", "", name)


def read_logs(stack: Stack, started: float, ended: float) -> dict[str, FunctionLogs]:
    """Every function's log lines in a window, added up."""
    time.sleep(5)  # the last invocations' lines reach CloudWatch
    logs = stack.client("logs")
    by_function: dict[str, FunctionLogs] = defaultdict(FunctionLogs)
    for group in function_log_groups(logs):
        if not group.startswith("/aws/lambda/"):
            continue
        figures = by_function[_function_name(stack, group)]
        window = (int(started * 1000) - 1000, int(ended * 1000) + 5000)
        for event in log_events(logs, group, *window):
            _add_line(figures, event["message"])
    return dict(by_function)


def _add_line(figures: FunctionLogs, message: str) -> None:
    if '"aws requests"' not in message:  # the bench's own instrument: not billed
        figures.log_bytes += len(message.encode())
    if report := _REPORT.search(message):
        figures.billed_ms += int(report[1])
        figures.memory_mb = int(report[2])
        figures.invocations += 1
    elif '"aws requests"' in message:
        line = json.loads(message[message.index("{") :])
        figures.requests.update(line.get("requests", {}))
        figures.units.update(line.get("capacity_units", {}))
        figures.entries.update(line.get("entries", {}))
    elif '"run planned"' in message:
        line = json.loads(message[message.index("{") :])
        peak = int(line.get("peak_memory_mb") or 0)
        figures.max_memory_used_mb = max(figures.max_memory_used_mb, peak)
    elif '"RecordLatency"' in message:
        value = json.loads(message[message.index("{") :])["RecordLatency"]
        figures.latencies_ms += value if isinstance(value, list) else [value]


def _seed(stack: Stack, job: str, clients: int, records: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    ids = [f"bench{tag}-{n:02d}" for n in range(clients)]
    for client_id in ids:
        seed_client(stack, job_type=job, client_id=client_id, group_id="north", records=records)
    return ids


def _seed_backfill_clients(stack: Stack, job: str, records: int) -> list[str]:
    """CLIENTS clients sharing ``records`` no run has processed, for a backfill to replay."""
    return _seed(stack, job, CLIENTS, records // CLIENTS)


def _configure_clients(stack: Stack, job: str, client_ids: list[str], enabled: bool = True) -> None:
    """Config rows only (no records on the external system), in batches."""
    with stack.table("ConfigTableName").batch_writer() as batch:
        for client_id in client_ids:
            config = ClientConfig(
                job_type=job, client_id=client_id, group_id="north", enabled=enabled
            )
            batch.put_item(Item=config.to_item())


def _forget_clients(stack: Stack, job: str, client_ids: list[str]) -> None:
    """The bench's config rows go when it is done with them: no schedule plans them again."""
    with stack.table("ConfigTableName").batch_writer() as batch:
        for client_id in client_ids:
            batch.delete_item(Key={"job_type": job, "client_id": client_id})


def run_job(stack: Stack, job: str, records: int, poller: AwsSizedPoller | None = None) -> Run:
    """Seed CLIENTS clients sharing ``records``, plan a run of ``job``, wait until it closes
    (fed by ``poller`` when given, else by the stack's own event source)."""
    client_ids = _seed(stack, job, CLIENTS, records // CLIENTS)
    started = time.time()
    planned = stack.invoke(stack.planners[job], {"trigger": "cli", "client_ids": client_ids})
    runs = open_ledger(stack.table("RunsTableName")).queries

    def closed() -> bool:
        # The header alone (one GetItem): a Query of the run's rows, every second, costs
        # MiniStack time in proportion to the run's size and slowed the run it measured.
        header = runs.header(planned["run_id"])
        return header is not None and header.status in FINAL_STATUSES

    if poller is not None:
        poller.run_until(closed)
    while not closed():
        time.sleep(1.0)
    _forget_clients(stack, job, client_ids)
    header = runs.header(planned["run_id"])
    assert header is not None
    assert header.finished_at is not None
    seconds = (header.finished_at - header.created_at).total_seconds()
    return Run(job, header.run_id, header.received, seconds, started, time.time())


def _external_calls(stack: Stack) -> Counter[str]:
    """The fake external system's own count of the calls it answered, by route."""
    with external_admin(stack) as admin:
        stats = admin.get("/_admin/stats").json()["requests"]
    return Counter({route: sum(by_status.values()) for route, by_status in stats.items()})


def _per_item(requests: Counter[str], n: int, service: str, ops: set[str] | None = None) -> float:
    """Requests per record item of a service (of some of its operations only)."""
    total = sum(
        count
        for key, count in requests.items()
        if key.startswith(f"{service}.") and (ops is None or key.split(".", 1)[1] in ops)
    )
    return round(total / n, 3)


def _planner_logs(stack: Stack, started: float, ended: float) -> tuple[int | None, dict[str, int]]:
    logs = read_logs(stack, started, ended).get("PlannerBenchNoop")
    if logs is None:
        return None, {}
    return logs.max_memory_used_mb or None, dict(sorted(logs.requests.items()))


def _api_reads(stack: Stack, run_id: str, client_ids: list[str]) -> dict[str, dict[str, float]]:
    """Seconds and response size of GET /health and GET /runs/{id} with every client planned:
    both must stay within API Gateway's 29 s and Lambda's 6 MB whatever the client count.

    The health page shows the job types the API serves, which bench-noop is not: the same
    clients are configured for the real job too, disabled (nothing plans them), meanwhile.
    """
    _configure_clients(stack, REAL, client_ids, enabled=False)
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
        _forget_clients(stack, REAL, client_ids)
    return figures


@contextmanager
def lambda_like_path() -> Iterator[str]:
    """A PYTHONPATH like Lambda's: the built function and layer (as deployed, bytecode
    included), and the runtime's boto3."""
    import_root = Path(boto3.__file__).parent.parent
    with tempfile.TemporaryDirectory() as runtime:
        for package in RUNTIME_PACKAGES:
            source = import_root / package
            if not source.exists():
                source = import_root / f"{package}.py"
            (Path(runtime) / source.name).symlink_to(source)
        built = ROOT / ".aws-sam" / "build"
        # `sam build` builds a layer per architecture: this machine's is the one that imports.
        layer = {"aarch64": "CommonLayerArm64", "arm64": "CommonLayerArm64"}.get(
            platform.machine(), "CommonLayerX8664"
        )
        yield os.pathsep.join([str(built / "Processor"), str(built / layer / "python"), runtime])


def import_seconds(codes: dict[str, str], path: str) -> dict[str, list[float]]:
    """Seconds each piece of code takes to import in a fresh interpreter, one sample a round.
    The pieces take turns within each round, so a machine that slows down or speeds up
    meanwhile weighs on all of them alike."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's code directories are read-only
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "JOB_TYPE": REAL,
        "CONFIG_TABLE": "c",
        "RUNS_TABLE": "r",
        "RECORDS_TABLE": "rec",
        "IDEMPOTENCY_TABLE": "i",
        "CONTROL_TABLE": "ctl",
        "WORK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/w",
        "WORK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/1/d",
        "EVENT_BUS_NAME": "b",
        "EXTERNAL_BASE_URL": "https://external.example.com",
        "CREDENTIALS_SECRET_PREFIX": "p",
        "RETRY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:1:function:r",
        "RETRY_ROLE_ARN": "arn:aws:iam::1:role/r",
        "RETRY_SCHEDULE_GROUP": "s",
    }
    timed = {
        name: f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
        for name, code in codes.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(IMPORT_SAMPLES):
        for name, program in timed.items():
            out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
                [sys.executable, "-S", "-c", program],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return samples


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _units(units: Counter[str], operations: set[str]) -> float:
    """Capacity units of these operations, over every table ("<table>.<Operation>")."""
    return sum(n for key, n in units.items() if key.rsplit(".", 1)[-1] in operations)


def _usage(
    stack: Stack,
    run: Run,
    logs: dict[str, FunctionLogs],
    external: int,
    domain_events: bool = True,
) -> Usage:
    """What the run used; without ``domain_events``, less the events' publishing, their
    delivery to the matcher's queue and the webhook functions."""
    if domain_events:
        return _usage_of(run, logs, external, _events(logs))
    kept = {name: f for name, f in logs.items() if name not in DOMAIN_EVENT_FUNCTIONS}
    return _usage_of(run, kept, external, events=0)


def _events(logs: dict[str, FunctionLogs]) -> int:
    """The domain events published: EventBridge bills each entry of a PutEvents."""
    return sum(f.entries["events.PutEvents"] for f in logs.values())


def _usage_of(run: Run, logs: dict[str, FunctionLogs], external: int, events: int) -> Usage:
    requests = sum((f.requests for f in logs.values()), Counter[str]())
    units = sum((f.units for f in logs.values()), Counter[str]())
    return Usage(
        records=run.records,
        lambda_gb_seconds=sum(f.billed_ms / 1000 * f.memory_mb / 1024 for f in logs.values()),
        lambda_invocations=sum(f.invocations for f in logs.values()),
        # The bus delivers every domain event to the matcher's queue: one SendMessage each.
        sqs_requests=_sqs_requests(requests, logs) + events,
        dynamodb_write_units=_units(units, DYNAMODB_WRITES),
        dynamodb_read_units=_units(units, DYNAMODB_READS),
        eventbridge_events=events,
        scheduler_invocations=requests["scheduler.CreateSchedule"],
        log_bytes=sum(f.log_bytes for f in logs.values()),
        external_calls=external,
    )


def _sqs_requests(requests: Counter[str], logs: dict[str, FunctionLogs]) -> int:
    """The SDK's requests, and the event sources' receives and deletes."""
    sdk = sum(n for k, n in requests.items() if k.startswith("sqs."))
    return sdk + 2 * sum(logs[name].invocations for name in SQS_TRIGGERED if name in logs)


def _batching(stack: Stack, run: Run, logs: dict[str, FunctionLogs], acks: int) -> Batching:
    processor = logs["Processor"]
    runs_table = stack.outputs["RunsTableName"]
    return Batching(
        record_send_requests=processor.requests["sqs.SendMessageBatch"],
        # Counting is the processor's plain writes to the runs table: each client's counters
        # (UpdateItem) and outcome packs (PutItem); page markers are its transactions.
        counting_write_units=processor.units[f"{runs_table}.UpdateItem"]
        + processor.units[f"{runs_table}.PutItem"],
        acks=acks,
        seconds_per_aws_request=processor.billed_ms / 1000 / max(1, processor.requests.total()),
        seconds_per_external_call=_external_call_seconds(stack),
        memory_gb=processor.memory_mb / 1024,
    )


def _external_call_seconds(stack: Stack) -> float:
    """The median time of one call to the external system, from this machine."""
    assert stack.external_url is not None
    samples = []
    with httpx.Client(base_url=stack.external_url) as http:
        for _ in range(50):
            started = time.perf_counter()
            http.get("/health")
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure_requests(stack: Stack) -> dict[str, Any]:
    before = _external_calls(stack)
    with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
        run = run_job(stack, REAL, SIZES[0], poller)
    calls = _external_calls(stack) - before
    external = calls.total()
    acks = sum(n for route, n in calls.items() if route.endswith("/acks"))
    logs = read_logs(stack, run.started, run.ended)
    requests = sum((f.requests for f in logs.values()), Counter[str]())
    n = run.records

    def per_item(service: str, operations: set[str] | None = None) -> float:
        return _per_item(requests, n, service, operations)

    usage = _usage(stack, run, logs, external)
    ours = usage.per_million()
    without_events = sum(
        _usage(stack, run, logs, external, domain_events=False).per_million().values()
    )
    theirs = naive(usage, _batching(stack, run, logs, acks)).per_million()
    floor = _floor(stack)
    units = sum((f.units for f in logs.values()), Counter[str]())
    return {
        "run": run,
        "figures": {
            "records": n,
            "batches": "up to 50 messages, as Lambda's poller on AWS (bench/poller.py)",
            "dynamodb_writes_per_item": per_item("dynamodb", DYNAMODB_WRITES),
            "dynamodb_reads_per_item": per_item("dynamodb", DYNAMODB_READS),
            "sqs_requests_per_item": per_item("sqs"),
            "external_calls_per_item": round(external / n, 3),
            "other_aws_requests_per_item": {
                service: per_item(service)
                for service in ("events", "secretsmanager", "scheduler", "lambda")
            },
            "dynamodb_write_units_per_item": round(usage.dynamodb_write_units / n, 3),
            "dynamodb_read_units_per_item": round(usage.dynamodb_read_units / n, 3),
            "requests_per_item_by_function": _by_function(logs, n),
            "cost_per_million_records_usd": {k: round(v, 3) for k, v in ours.items()},
            "cost_per_million_records_usd_total": round(sum(ours.values()), 2),
            "naive_cost_per_million_records_usd": {k: round(v, 3) for k, v in theirs.items()},
            "naive_cost_per_million_records_usd_total": round(sum(theirs.values()), 2),
            "cost_ratio_naive_over_ours": round(sum(theirs.values()) / sum(ours.values()), 2),
            "dynamodb_write_units_per_item_by_table": _units_by_table(stack, units, n),
            "floor_cost_per_million_records_usd": {k: round(v, 3) for k, v in floor.items()},
            "floor_cost_per_million_records_usd_total": round(sum(floor.values()), 2),
            "cost_floor_ratio": round(sum(ours.values()) / sum(floor.values()), 2),
            "domain_events_cost_per_million_records_usd": round(
                sum(ours.values()) - without_events, 3
            ),
            "cost_floor_ratio_less_domain_events": round(without_events / sum(floor.values()), 2),
        },
    }


SLOW_LATENCY_MS = 500


def measure_slow_external(stack: Stack) -> dict[str, Any]:
    """The processor at AWS's batch size (the AWS-sized poller's batches of 50) with every
    external call 500 ms slower: its time budget must end no invocation by timeout, and the
    per-record figures barely move."""
    with external_admin(stack) as admin:
        admin.put("/_admin/faults", json={"latency_ms": SLOW_LATENCY_MS}).raise_for_status()
        try:
            before = _external_calls(stack)
            with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
                run = run_job(stack, REAL, SIZES[0], poller)
            external = (_external_calls(stack) - before).total()
        finally:
            admin.put("/_admin/faults", json={}).raise_for_status()
    logs = read_logs(stack, run.started, run.ended)
    requests = sum((f.requests for f in logs.values()), Counter[str]())
    n = run.records
    return {
        "latency_ms_added": SLOW_LATENCY_MS,
        "records": n,
        "ms_per_record": round(1000 * run.seconds / n, 2),
        "poller": poller.report.as_dict(),
        "dynamodb_writes_per_item": _per_item(requests, n, "dynamodb", DYNAMODB_WRITES),
        "sqs_requests_per_item": _per_item(requests, n, "sqs"),
        "external_calls_per_item": round(external / n, 3),
    }


def _by_function(logs: dict[str, FunctionLogs], n: int) -> dict[str, dict[str, float]]:
    return {
        name: {op: round(count / n, 3) for op, count in sorted(f.requests.items())}
        for name, f in sorted(logs.items())
        if f.requests
    }


def _floor(stack: Stack) -> dict[str, float]:
    """The exactly-once floor per 1M records: 6 write units a record (the idempotency record's
    PutItem and UpdateItem; the guarded transition and its history row in one transaction),
    and what bench-noop's pipeline spends on SQS and Lambda in the same conditions (fed by
    the AWS-sized poller)."""
    before = _external_calls(stack)
    with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
        run = run_job(stack, NOOP, SIZES[0], poller)
    external = (_external_calls(stack) - before).total()
    noop = _usage(stack, run, read_logs(stack, run.started, run.ended), external).per_million()
    return {
        "dynamodb": FLOOR_WRITE_UNITS * DYNAMODB_WRITE_UNIT * MILLION,
        "sqs": noop["sqs"],
        "lambda": noop["lambda"],
    }


def _units_by_table(stack: Stack, units: Counter[str], n: int) -> dict[str, float]:
    """Write units per record by table and operation ("Runs.TransactWriteItems"): what each
    guarantee costs."""
    names = {
        stack.outputs[f"{table}TableName"]: table
        for table in (
            "Config",
            "Runs",
            "Records",
            "Idempotency",
            "Control",
            "Keys",
            "Subscriptions",
            "Deliveries",
        )
    }
    by_table: Counter[str] = Counter()
    for key, value in units.items():
        table, operation = key.rsplit(".", 1)
        if operation in DYNAMODB_WRITES:
            by_table[f"{names.get(table, table)}.{operation}"] += value
    return {key: round(value / n, 3) for key, value in sorted(by_table.items())}


def main() -> None:
    console = Console()
    localstack.up()
    stack = Stack.current()
    # Timed first, while the stack is idle: the interpreters compete with nothing.
    results: dict[str, Any] = _import_figures()
    # Fresh workers start slowly on two cores (imports, first connections): one small run of
    # each job first, not measured, so the figures are of warm containers as in steady use.
    for job in (REAL, NOOP):
        run_job(stack, job, 10 * CLIENTS)
    measured = measure_requests(stack)
    results.update(measured["figures"])
    results["ms_per_record_aws_batches"] = round(
        1000 * measured["run"].seconds / measured["run"].records, 2
    )
    results["slow_external"] = measure_slow_external(stack)
    results["timeouts"] = results["slow_external"]["poller"]["timeouts"]
    # The same run fed by MiniStack's own poller (batches of at most 10), for comparison.
    real_1k = run_job(stack, REAL, SIZES[0])
    local_logs = read_logs(stack, real_1k.started, real_1k.ended)
    local_requests = sum((f.requests for f in local_logs.values()), Counter[str]())
    results["dynamodb_writes_per_item_ministack_batches"] = _per_item(
        local_requests, real_1k.records, "dynamodb", DYNAMODB_WRITES
    )
    noop = run_job(stack, NOOP, SIZES[0])
    results["throughput_records_per_second"] = {
        REAL: round(real_1k.records_per_second, 1),
        NOOP: round(noop.records_per_second, 1),
    }
    results["throughput_ratio"] = round(real_1k.records_per_second / noop.records_per_second, 2)
    results.update(_scale_figures(stack, real_1k, local_logs))
    results["backfill"] = backfill_interference(
        stack, REAL, BACKFILL_RECORDS, run_job, _seed_backfill_clients, _forget_clients
    )
    results["backfill_interference"] = results["backfill"]["ratio"]
    # Kept before planning, the longest part: what a failed fire would otherwise lose.
    (ROOT / "bench" / "results.partial.json").write_text(json.dumps(results, indent=2) + "\n")
    results["plan"] = plan_at_scale(
        stack, _configure_clients, _forget_clients, _planner_logs, _api_reads
    )
    largest = results["plan"]["sizes"][str(max(PLAN_SIZES))]
    results["plan_100k_seconds"] = largest["seconds"]
    results["plan_seconds_per_client_spread"] = results["plan"]["seconds_per_client_spread"]
    results["plan_peak_memory_mb"] = largest["peak_memory_mb"]
    results["plan_100k_seconds_less_partition_sort"] = largest["seconds_less_partition_sort"]
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _print(console, results)


def _import_figures() -> dict[str, Any]:
    """How long the handlers take to import, against a bare baseline and one with pydantic."""
    with lambda_like_path() as path:
        seconds = import_seconds(
            {
                "baseline": BASELINE,
                "processor": "import processor.app",
                "planner": "import planner.app",
                "baseline_with_pydantic": BASELINE_WITH_PYDANTIC,
            },
            path,
        )
    median = {name: statistics.median(values) for name, values in seconds.items()}

    def ratio(code: str, baseline: str) -> float:
        """The median over the rounds of each round's ratio."""
        per_round = [a / b for a, b in zip(seconds[code], seconds[baseline], strict=True)]
        return round(statistics.median(per_round), 2)

    return {
        "import_seconds": {name: round(value, 3) for name, value in median.items()},
        "import_ratio": ratio("processor", "baseline"),
        "import_ratio_planner": ratio("planner", "baseline"),
        "import_ratio_over_baseline_with_pydantic": ratio("processor", "baseline_with_pydantic"),
    }


def _scale_figures(stack: Stack, first: Run, first_logs: dict[str, FunctionLogs]) -> dict[str, Any]:
    """Time per record and latency at each size (the first size's run is ``first``)."""
    scale: dict[str, Any] = {}
    for size in SIZES:
        run = first if size == SIZES[0] else run_job(stack, REAL, size)
        logs = first_logs if run is first else read_logs(stack, run.started, run.ended)
        latencies = logs["Processor"].latencies_ms
        scale[str(run.records)] = {
            "run_id": run.run_id,
            "seconds": round(run.seconds, 1),
            "ms_per_record": round(1000 * run.seconds / run.records, 2),
            "latency_ms_p50": round(_percentile(latencies, 0.50)),
            "latency_ms_p95": round(_percentile(latencies, 0.95)),
            "latency_samples": len(latencies),
        }
    per_record = [figures["ms_per_record"] for figures in scale.values()]
    spread = (max(per_record) - min(per_record)) / statistics.mean(per_record)
    return {"scale": scale, "time_per_record_spread": round(spread, 2)}


def _print(console: Console, results: dict[str, Any]) -> None:
    console.print(_goals_table(results))
    console.print(_costs_table(results))
    console.print(_scale_table(results))
    for size, figures in results["plan"]["sizes"].items():
        console.print(
            f"planning {size} clients: {figures['seconds']} s"
            f" ({figures['seconds_less_partition_sort']} s less MiniStack's partition sort),"
            f" peak {figures['peak_memory_mb']} MB"
        )
    console.print("written: bench/results.json")


def _goals_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"make bench · {results['records']} records, {CLIENTS} clients")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for name, (sense, goal) in GOALS.items():
        value = results[name]
        held = value <= goal if sense == "<=" else value >= goal
        table.add_row(name, str(value), f"{sense} {goal} {'[green]ok' if held else '[red]missed'}")
    for name in (
        "import_ratio",
        "dynamodb_write_units_per_item",
        "plan_100k_seconds_less_partition_sort",
        "plan_peak_memory_mb",
        "dynamodb_writes_per_item_ministack_batches",
        "dynamodb_reads_per_item",
        "throughput_records_per_second",
    ):
        table.add_row(name, str(results[name]), "")
    return table


def _costs_table(results: dict[str, Any]) -> Table:
    costs = Table(title="cost per 1M records on AWS (USD)")
    costs.add_column("service")
    costs.add_column("jobkit", justify="right")
    costs.add_column("naive", justify="right")
    ours = results["cost_per_million_records_usd"]
    theirs = results["naive_cost_per_million_records_usd"]
    for service in ours:
        costs.add_row(service, f"{ours[service]:.3f}", f"{theirs[service]:.3f}")
    costs.add_row(
        "total",
        f"{results['cost_per_million_records_usd_total']:.2f}",
        f"{results['naive_cost_per_million_records_usd_total']:.2f}",
    )
    return costs


def _scale_table(results: dict[str, Any]) -> Table:
    scale = Table(title="scale")
    for column in ("records", "seconds", "ms/record", "p50 latency ms", "p95 latency ms"):
        scale.add_column(column, justify="right")
    for records, figures in results["scale"].items():
        scale.add_row(
            records,
            str(figures["seconds"]),
            str(figures["ms_per_record"]),
            str(figures["latency_ms_p50"]),
            str(figures["latency_ms_p95"]),
        )
    return scale


if __name__ == "__main__":
    main()
