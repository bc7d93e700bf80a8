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
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.backfill import backfill_interference
from bench.imports import import_figures
from bench.logs import FunctionLogs, read_logs
from bench.planning import SIZES as PLAN_SIZES
from bench.planning import emulator_cpu_seconds, plan_at_scale
from bench.usage import (
    DYNAMODB_WRITES,
    measure_requests,
    measure_slow_external,
    requests_per_item,
)
from bench.workload import (
    CLIENTS,
    NOOP,
    REAL,
    SIZES,
    Run,
    forget_clients,
    run_job,
    seed_backfill_clients,
)
from jobkit_cli import localstack
from jobkit_cli.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
BACKFILL_RECORDS = int(os.environ.get("JOBKIT_BENCH_BACKFILL_RECORDS", "5000"))
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


def main() -> None:
    console = Console()
    localstack.up()
    stack = Stack.current()
    # Timed first, while the stack is idle: the interpreters compete with nothing.
    results: dict[str, Any] = import_figures()
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
    real_1k, real_cost = _run_costed(stack, REAL)
    local_logs = read_logs(stack, real_1k.started, real_1k.ended)
    local_requests = sum((f.requests for f in local_logs.values()), Counter[str]())
    results["dynamodb_writes_per_item_ministack_batches"] = requests_per_item(
        local_requests, real_1k.records, "dynamodb", DYNAMODB_WRITES
    )
    noop, noop_cost = _run_costed(stack, NOOP)
    results["throughput_records_per_second"] = {
        REAL: round(real_1k.records_per_second, 1),
        NOOP: round(noop.records_per_second, 1),
    }
    results["throughput_ratio"] = round(real_1k.records_per_second / noop.records_per_second, 2)
    results["throughput_cost_per_record"] = {
        REAL: real_cost | _processor_requests(local_logs, real_1k),
        NOOP: noop_cost | _processor_requests(read_logs(stack, noop.started, noop.ended), noop),
    }
    results.update(_scale_figures(stack, real_1k, local_logs))
    results["backfill"] = backfill_interference(
        stack, REAL, BACKFILL_RECORDS, run_job, seed_backfill_clients, forget_clients
    )
    results["backfill_interference"] = results["backfill"]["ratio"]
    # Kept before planning, the longest part: what a failed fire would otherwise lose.
    (ROOT / "bench" / "results.partial.json").write_text(json.dumps(results, indent=2) + "\n")
    results["plan"] = plan_at_scale(stack)
    largest = results["plan"]["sizes"][str(max(PLAN_SIZES))]
    results["plan_100k_seconds"] = largest["seconds"]
    results["plan_seconds_per_client_spread"] = results["plan"]["seconds_per_client_spread"]
    results["plan_peak_memory_mb"] = largest["peak_memory_mb"]
    results["plan_100k_seconds_less_partition_sort"] = largest["seconds_less_partition_sort"]
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _print(console, results)


def _run_costed(stack: Stack, job: str) -> tuple[Run, dict[str, float]]:
    """A run of SIZES[0] records, and the CPU MiniStack (one process, which answers every
    AWS request of every function) spent on it per record."""
    cpu = emulator_cpu_seconds()
    run = run_job(stack, job, SIZES[0])
    cpu = emulator_cpu_seconds() - cpu
    return run, {"ministack_cpu_ms": round(1000 * cpu / run.records, 2)}


def _processor_requests(logs: dict[str, FunctionLogs], run: Run) -> dict[str, float]:
    """The AWS requests the processor made per record of ``run``, and its billed time."""
    processor = logs["Processor"]
    return {
        "processor_requests": round(sum(processor.requests.values()) / run.records, 3),
        "processor_billed_ms": round(processor.billed_ms / run.records, 2),
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


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
