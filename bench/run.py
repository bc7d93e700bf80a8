"""`make bench`: what a record costs, measured on the local stack (first slice of issue 8).

Measured here:
- AWS requests per record item, counted at the SDK in every function (each invocation logs
  its counts when the stack runs with LogRequestCounts=true), by service and operation;
- external HTTP calls per record item (the fake external system's own request counts);
- cold start: import time of the processor and planner modules against a baseline handler
  that imports only what any implementation of this design needs.

Not measured yet (issue 8 continues): cost per 1M records and the naive build, throughput
against a no-op job, planning 10,000 clients, time per record at 1k/10k/30k, p50/p95 latency.

Writes bench/results.json and prints a table. Benchmarks measure; tests never assert timings.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jobkit.runs import RunStore
from jobkit_cli import localstack
from jobkit_cli.logs import function_log_groups, log_events
from jobkit_cli.runs_view import is_final
from jobkit_cli.seed import external_admin, seed_client
from jobkit_cli.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
JOB = "sync-completed-records"
CLIENTS = int(os.environ.get("JOBKIT_BENCH_CLIENTS", "10"))
RECORDS = int(os.environ.get("JOBKIT_BENCH_RECORDS", "100"))
IMPORT_SAMPLES = 10

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
GOALS = {
    "dynamodb_writes_per_item": 3.2,
    "dynamodb_reads_per_item": None,
    "sqs_requests_per_item": 0.25,
    "external_calls_per_item": 0.15,
    "import_ratio": 1.3,
}

# What any handler of this design imports: Powertools' logger, metrics, tracer, batch
# processing and idempotency on DynamoDB, and one boto3 client.
BASELINE = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, idempotent_function,
)
import boto3
boto3.client("dynamodb")
"""


def _run(stack: Stack) -> tuple[str, float, int]:
    tag = uuid.uuid4().hex[:6]
    clients = [f"bench{tag}-{n:02d}" for n in range(CLIENTS)]
    for client_id in clients:
        seed_client(stack, job_type=JOB, client_id=client_id, group_id="north", records=RECORDS)
    started = time.time()
    planned = stack.invoke(stack.planners[JOB], {"trigger": "cli", "client_ids": clients})
    runs = RunStore(stack.table("RunsTableName"))
    while True:
        view = runs.view(planned["run_id"])
        if view is not None and is_final(view):
            return planned["run_id"], started, view.header.received
        time.sleep(1.0)


def _request_counts(stack: Stack, since: float) -> Counter[str]:
    time.sleep(5)  # the last invocations' logs reach CloudWatch
    logs = stack.client("logs")
    counts: Counter[str] = Counter()
    for group in function_log_groups(logs):
        for event in log_events(logs, group, start_ms=int(since * 1000) - 1000):
            message = event["message"]
            if '"aws requests"' not in message:
                continue
            counts.update(json.loads(message[message.index("{") :]).get("requests", {}))
    return counts


def _external_calls(stack: Stack) -> int:
    with external_admin(stack) as admin:
        stats = admin.get("/_admin/stats").json()["requests"]
    return sum(sum(by_status.values()) for by_status in stats.values())


def _import_seconds(code: str) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT / 'layers' / 'common'}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "JOB_TYPE": JOB,
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
    }
    timed = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    samples = []
    for _ in range(IMPORT_SAMPLES):
        out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
            [sys.executable, "-c", timed], env=env, capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    console = Console()
    localstack.up()
    stack = Stack.current()
    external_before = _external_calls(stack)
    run_id, started, received = _run(stack)
    counts = _request_counts(stack, started)
    external = _external_calls(stack) - external_before

    def total(service: str, operations: set[str] | None = None) -> int:
        return sum(
            n
            for key, n in counts.items()
            if key.startswith(f"{service}.")
            and (operations is None or key.split(".", 1)[1] in operations)
        )

    baseline = _import_seconds(BASELINE)
    processor = _import_seconds("import processor.app")
    planner = _import_seconds("import planner.app")
    results: dict[str, Any] = {
        "run_id": run_id,
        "records": received,
        "clients": CLIENTS,
        "dynamodb_writes_per_item": round(total("dynamodb", DYNAMODB_WRITES) / received, 3),
        "dynamodb_reads_per_item": round(total("dynamodb", DYNAMODB_READS) / received, 3),
        "sqs_requests_per_item": round(total("sqs") / received, 3),
        "external_calls_per_item": round(external / received, 3),
        "other_aws_requests_per_item": {
            service: round(total(service) / received, 3)
            for service in ("events", "secretsmanager", "scheduler", "lambda")
        },
        "requests_by_operation": dict(sorted(counts.items())),
        "import_seconds": {
            "baseline": round(baseline, 3),
            "processor": round(processor, 3),
            "planner": round(planner, 3),
        },
        "import_ratio": round(processor / baseline, 2),
        "not_measured_yet": [
            "cost per 1M records and the naive build",
            "throughput_ratio against a no-op job",
            "planning 10,000 clients",
            "time per record at 1k / 10k / 30k records",
            "p50 / p95 enqueue-to-processed latency",
        ],
    }
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    table = Table(title=f"make bench · {received} records, {CLIENTS} clients · {run_id}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for name, goal in GOALS.items():
        value = results[name]
        mark = "" if goal is None else ("[green]ok" if value <= goal else "[red]over")
        table.add_row(name, str(value), "" if goal is None else f"<= {goal} {mark}")
    for operation, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {operation}", f"{n / received:.3f} / item", "")
    console.print(table)
    console.print("written: bench/results.json")


if __name__ == "__main__":
    main()
