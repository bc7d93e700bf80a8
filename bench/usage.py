"""Requests per record and cost per 1M records of one run, from the functions' logs:
jobkit's, the naive build's (bench/cost.py), and the exactly-once floor's."""

import statistics
import time
from collections import Counter
from typing import Any

import httpx

from bench.cost import DYNAMODB_WRITE_UNIT, FLOOR_WRITE_UNITS, MILLION, Batching, Usage, naive
from bench.logs import FunctionLogs, read_logs
from bench.poller import AwsSizedPoller
from bench.workload import NOOP, REAL, SIZES, Run, external_calls, run_job
from jobkit_cli.seed import external_admin
from jobkit_cli.stack import Stack

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
# Their event sources poll the queue and delete what was handled: SQS requests too.
SQS_TRIGGERED = {"Processor", "WebhookMatcher", "WebhookDelivery"}
# What domain events cost beyond the bus: matching them to subscriptions, and delivering.
DOMAIN_EVENT_FUNCTIONS = {"WebhookMatcher", "WebhookDelivery"}


def requests_per_item(
    requests: Counter[str], n: int, service: str, ops: set[str] | None = None
) -> float:
    """Requests per record item of a service (of some of its operations only)."""
    total = sum(
        count
        for key, count in requests.items()
        if key.startswith(f"{service}.") and (ops is None or key.split(".", 1)[1] in ops)
    )
    return round(total / n, 3)


def _units(units: Counter[str], operations: set[str]) -> float:
    """Capacity units of these operations, over every table ("<table>.<Operation>")."""
    return sum(n for key, n in units.items() if key.rsplit(".", 1)[-1] in operations)


def _usage(
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
    before = external_calls(stack)
    with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
        run = run_job(stack, REAL, SIZES[0], poller)
    calls = external_calls(stack) - before
    external = calls.total()
    acks = sum(n for route, n in calls.items() if route.endswith("/acks"))
    logs = read_logs(stack, run.started, run.ended)
    requests = sum((f.requests for f in logs.values()), Counter[str]())
    n = run.records

    def per_item(service: str, operations: set[str] | None = None) -> float:
        return requests_per_item(requests, n, service, operations)

    usage = _usage(run, logs, external)
    ours = usage.per_million()
    without_events = sum(_usage(run, logs, external, domain_events=False).per_million().values())
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
            before = external_calls(stack)
            with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
                run = run_job(stack, REAL, SIZES[0], poller)
            external = (external_calls(stack) - before).total()
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
        "dynamodb_writes_per_item": requests_per_item(requests, n, "dynamodb", DYNAMODB_WRITES),
        "sqs_requests_per_item": requests_per_item(requests, n, "sqs"),
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
    before = external_calls(stack)
    with AwsSizedPoller(stack).in_place_of_the_mapping() as poller:
        run = run_job(stack, NOOP, SIZES[0], poller)
    external = (external_calls(stack) - before).total()
    noop = _usage(run, read_logs(stack, run.started, run.ended), external).per_million()
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
