"""docs/performance.md, rendered from bench/results.json.

`make bench` measures and writes bench/results.json; `python -m bench.performance_page`
writes the page from it. The page is never edited by hand: a unit test checks that the
committed page is what this module renders from the committed results.
"""

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cost import DYNAMODB_WRITE_UNIT, FLOOR_WRITE_UNITS, MILLION
from bench.imports import IMPORT_SAMPLES
from bench.run import GOALS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
PAGE = ROOT / "docs" / "performance.md"
COMMAND = "`make bench`"

# What each goal of bench/run.py's GOALS measures, in words ({…} from the results).
GOAL_LABELS: dict[str, str] = {
    "cost_floor_ratio": "Cost per 1M records / the exactly-once floor's",
    "import_ratio_over_baseline_with_pydantic": (
        "Processor import time / baseline handler's with pydantic (median of {samples} rounds)"
    ),
    "plan_100k_seconds": "Seconds to plan one run of {plan_largest} clients",
    "plan_seconds_per_client_spread": "Spread of the planning time per client, {plan_sizes}",
    "backfill_interference": "A scheduled run's time per record beside a backfill / alone",
    "dynamodb_writes_per_item": "DynamoDB write requests per record (batches of 50, as on AWS)",
    "sqs_requests_per_item": "SQS requests per record",
    "external_calls_per_item": "External calls per record",
    "throughput_ratio": "Throughput, sync-completed-records / bench-noop",
    "time_per_record_spread": "Spread of the time per record at {sizes} records",
    "timeouts": "Processor timeouts, batches of 50, external calls 500 ms slower",
}

# Every top-level key of bench/results.json that this page renders.
RENDERED_KEYS = frozenset(
    {
        "import_seconds",
        "import_ratio",
        "import_ratio_planner",
        "import_ratio_over_baseline_with_pydantic",
        "import_ratio_over_baseline_gc_paused_alike",
        "import_breakdown_ms",
        "records",
        "batches",
        "dynamodb_writes_per_item",
        "dynamodb_reads_per_item",
        "sqs_requests_per_item",
        "external_calls_per_item",
        "other_aws_requests_per_item",
        "dynamodb_write_units_per_item",
        "dynamodb_read_units_per_item",
        "requests_per_item_by_function",
        "cost_per_million_records_usd",
        "cost_per_million_records_usd_total",
        "naive_cost_per_million_records_usd",
        "naive_cost_per_million_records_usd_total",
        "cost_ratio_naive_over_ours",
        "dynamodb_writes_per_item_ministack_batches",
        "throughput_records_per_second",
        "throughput_ratio",
        "throughput_cost_per_record",
        "scale",
        "time_per_record_spread",
        "plan",
        "plan_100k_seconds",
        "plan_100k_seconds_less_partition_sort",
        "plan_seconds_per_client_spread",
        "plan_peak_memory_mb",
        "dynamodb_write_units_per_item_by_table",
        "floor_cost_per_million_records_usd",
        "floor_cost_per_million_records_usd_total",
        "cost_floor_ratio",
        "cost_floor_ratio_less_domain_events",
        "domain_events_cost_per_million_records_usd",
        "ms_per_record_aws_batches",
        "slow_external",
        "timeouts",
        "backfill",
        "backfill_interference",
    }
)

# Names for the results' service keys; a key not named here is shown as it is.
SERVICES: dict[str, str] = {
    "lambda": "Lambda",
    "sqs": "SQS (SDK requests, the event sources' receives and deletes, the bus's deliveries)",
    "dynamodb": "DynamoDB on demand",
    "eventbridge": "EventBridge",
    "events": "EventBridge",
    "scheduler": "EventBridge Scheduler",
    "secretsmanager": "Secrets Manager",
    "cloudwatch_logs": "CloudWatch Logs (EMF metrics included)",
}


# {samples}: bench/imports.py's IMPORT_SAMPLES.
HOW_MEASURED = """\
## How it is measured, and what differs from AWS

- **Where.** On the local stack (MiniStack) on the machine that ran `make bench`, not on AWS.
  `make bench` (`bench/run.py`) deploys the stack, times imports while it is idle, warms both
  jobs with a small run, then measures. Sizes can be lowered for a quick look:
  `JOBKIT_BENCH_SIZES=1000 JOBKIT_BENCH_PLAN_SIZES=500,1000 make bench`.
- **Requests.** Every AWS request of every function is counted at the SDK, by function,
  service and operation, with the DynamoDB capacity units it consumed (each invocation logs
  them when the stack runs with `LogRequestCounts=true`, as the local stack does). External
  calls are the fake external system's own counts. Lambda time is the billed duration the
  stack reports.
- **Batch size.** MiniStack's event source hands a function at most 10 messages and has no
  batching window; Lambda's hands up to `BatchSize` (50) gathered over 1 s. For the
  per-record request figures the bench turns the processor's mapping off and feeds it as
  Lambda's poller does (`bench/poller.py`: up to 50 messages within 1 s, invoke, delete what
  did not fail). Throughput, time per record and latency come from runs fed by MiniStack's
  own event source.
- **Cold start.** {samples} rounds; in each, fresh interpreters take turns importing the
  processor, the planner and two baselines, from the built function and layer (bytecode
  included, as deployed) with the runtime's boto3. The baseline handler creates Powertools'
  Logger, Metrics, Tracer, an SQS BatchProcessor, a DynamoDBPersistenceLayer and one boto3
  client; the second baseline adds `import pydantic` and one model. A ratio is the median of
  the rounds' ratios. A third baseline pauses garbage collection for its init as jobkit's
  handlers do. The time jobkit's models take is the median of five further interpreters.
  The processor and planner build rarely used parts on first use (the HTTP client, API
  models, Parameters, the SQS client), and job modules are imported on the first item of
  their type (`jobs.JOBS`).
- **Throughput.** `bench-noop` fetches and acknowledges the same pages through the same
  planner, queue, idempotency and counting, and skips every record: the difference is the
  rules (the records' states read, the guarded transaction, its event). Both share the
  machine's cores with MiniStack.
- **Time per record and latency.** Each run's time is its header's `finished_at -
  created_at`; the bench waits by reading the run's header (one GetItem). Latency is the
  processor's `RecordLatency` metric, from enqueue to counted.
- **Planning.** Config rows only, no external data. The processor's event source is paused
  while the planner runs, and the run's page items are purged after (the run is cancelled):
  on two cores, ten processor workers draining them as they arrive would share the CPU the
  planner is measured on, as they do not on AWS. Peak memory is the planner process's peak RSS
  during that planning (`jobkit.tooling.peak_memory`: reset, then read, through `/proc`),
  logged with its `run planned` line; MiniStack's `Max Memory Used` is that of its finished
  child processes.
- **API reads.** One `GET /health` and one `GET /runs/{{id}}` through API Gateway while the
  planned run is open; for `GET /health` the same clients are configured, disabled, for
  sync-completed-records. MiniStack answers the health page's client count (`Select=COUNT`)
  by reading every row.
- **Cost.** `bench/cost.py`: us-east-1 on-demand prices, Lambda arm64 at the configured
  memory and the billed durations the local stack reported (slower than Lambda, so an upper
  bound). The floor's SQS and Lambda are a bench-noop run's, fed by the same poller. The
  naive build is priced from the same run, changing only one SendMessage, one counter update
  and one acknowledgement per record.
"""


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


def _dollars(value: float, places: int = 3) -> str:
    return f"${value:,.{places}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _met(value: float, sense: str, goal: float) -> bool:
    return value <= goal if sense == "<=" else value >= goal


def _sizes(results: Mapping[str, Any]) -> str:
    return " / ".join(f"{int(records):,}" for records in results["scale"])


def _service(key: str) -> str:
    return SERVICES.get(key, key)


def _goals(results: Mapping[str, Any]) -> list[str]:
    plan_sizes = list(results["plan"]["sizes"])
    context = {
        "plan_largest": f"{int(plan_sizes[-1]):,}",
        "plan_sizes": f"{int(plan_sizes[0]):,} to {int(plan_sizes[-1]):,} clients",
        "sizes": _sizes(results),
        "samples": IMPORT_SAMPLES,
    }
    rows = []
    for key, (sense, goal) in GOALS.items():
        value = results[key]
        rows.append(
            (
                GOAL_LABELS[key].format(**context),
                f"{sense} {_number(goal)}",
                _number(value),
                _number(_met(value, sense, goal)),
                COMMAND,
            )
        )
    return [
        "## Goals",
        "",
        *_table(("Goal", "Target", "Measured", "Met", "Command"), rows),
        "",
        "The goals are `GOALS` in `bench/run.py`. The request figures are measured with "
        f"batches of {results['batches']}.",
    ]


def _requests(results: Mapping[str, Any]) -> list[str]:
    other = results["other_aws_requests_per_item"]
    rows = [
        ("DynamoDB write requests (batches of 50)", _number(results["dynamodb_writes_per_item"])),
        (
            "DynamoDB write requests (MiniStack's batches of at most 10)",
            _number(results["dynamodb_writes_per_item_ministack_batches"]),
        ),
        ("DynamoDB write units", _number(results["dynamodb_write_units_per_item"])),
        ("DynamoDB read requests", _number(results["dynamodb_reads_per_item"])),
        ("DynamoDB read units", _number(results["dynamodb_read_units_per_item"])),
        ("SQS requests", _number(results["sqs_requests_per_item"])),
        ("External calls", _number(results["external_calls_per_item"])),
        *((f"{_service(key)} requests", _number(other[key])) for key in sorted(other)),
    ]
    by_function = [
        (function, f"`{operation}`", _number(count))
        for function, operations in results["requests_per_item_by_function"].items()
        for operation, count in operations.items()
    ]
    return [
        f"## Requests per record ({results['records']:,} records) — {COMMAND}",
        "",
        *_table(("Per record", "Measured"), rows),
        "",
        "By function and operation:",
        "",
        *_table(("Function", "Operation", "Per record"), by_function),
        "",
        "In the processor, `PutItem` and `UpdateItem` are mostly the idempotency record (saved, "
        "then completed); `TransactWriteItems` is the guarded transition with its history row; "
        "each batch adds, per client, one counter update and one outcome pack; `PutEvents` "
        "carries ten domain events a request.",
    ]


def _cost(results: Mapping[str, Any]) -> list[str]:
    ours = results["cost_per_million_records_usd"]
    naive = results["naive_cost_per_million_records_usd"]
    floor = results["floor_cost_per_million_records_usd"]
    rows = [
        (
            _service(key),
            _dollars(ours[key]),
            _dollars(floor[key]) if key in floor else "-",
            _dollars(naive[key]),
        )
        for key in ours
    ]
    ours_total = results["cost_per_million_records_usd_total"]
    naive_total = results["naive_cost_per_million_records_usd_total"]
    floor_total = results["floor_cost_per_million_records_usd_total"]
    rows.append(
        (
            "**Total**",
            f"**{_dollars(ours_total, 2)}**",
            f"**{_dollars(floor_total, 2)}**",
            f"**{_dollars(naive_total, 2)}**",
        )
    )
    units = [
        (f"`{key}`", _number(value))
        for key, value in results["dynamodb_write_units_per_item_by_table"].items()
    ]
    floor_units = FLOOR_WRITE_UNITS * DYNAMODB_WRITE_UNIT * MILLION
    return [
        f"## Cost per 1M records on AWS (USD) — {COMMAND}",
        "",
        *_table(("Service", "jobkit", "Exactly-once floor", "Naive build"), rows),
        "",
        f"Ratio jobkit / floor (`cost_floor_ratio`): {_number(results['cost_floor_ratio'])}. "
        f"Naive / jobkit: {_number(results['cost_ratio_naive_over_ours'])}.",
        "",
        "The domain events (one `record.status_changed` per transition, the webhooks' "
        "source) are not part of the floor: EventBridge bills every entry of a PutEvents as "
        "an event, the bus delivers each to the matcher's queue (an SQS request), and the "
        "webhook functions match and deliver them. They cost "
        f"{_dollars(results['domain_events_cost_per_million_records_usd'])} per million "
        "records; without them the ratio is "
        f"{_number(results['cost_floor_ratio_less_domain_events'])} "
        "(`cost_floor_ratio_less_domain_events`). The webhook matcher runs on MiniStack's "
        "batches of at most 10 events, not AWS's 100: its share is an upper bound.",
        "",
        "The floor is what exactly-once processing cannot do without: the idempotency record "
        "(its PutItem and UpdateItem, 2 write units) and the guarded transition with its "
        f"history row (one transaction of two items, 4 units), {_dollars(floor_units, 2)} per "
        "million records, plus what bench-noop's pipeline spends on SQS and Lambda in the same "
        "run conditions (batches of 50). Write units per record by table and operation, where "
        f"the {_number(results['dynamodb_write_units_per_item'])} units go:",
        "",
        *_table(("Table.Operation", "Write units per record"), units),
        "",
        "What each guarantee costs per record, from the same units:",
        "",
        *_table(
            ("Guarantee", "Where", "Write units per record", "USD per 1M"), _guarantees(results)
        ),
    ]


# The tables each guarantee writes: the run ledger keeps both the counts and the items list
# (one outcome pack per client per batch serves both), the Control table the rate limit.
GUARANTEES = (
    ("Exactly-once processing (the floor)", "Idempotency, Records", ("Idempotency.", "Records.")),
    (
        "Exactly-once counting and `GET /runs/{id}/items`",
        "Runs: client rows, counters, outcome packs, page markers, closing",
        ("Runs.",),
    ),
    ("The provider's rate limit", "Control: a token per external call", ("Control.",)),
    ("Client state (failure streaks)", "Config", ("Config.",)),
)


def _guarantees(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    units = results["dynamodb_write_units_per_item_by_table"]
    rows = []
    for guarantee, where, prefixes in GUARANTEES:
        total = sum(value for key, value in units.items() if key.startswith(prefixes))
        price = _dollars(total * DYNAMODB_WRITE_UNIT * MILLION)
        rows.append((guarantee, where, _number(round(total, 3)), price))
    return rows


def _throughput(results: Mapping[str, Any]) -> list[str]:
    costs = results["throughput_cost_per_record"]
    rows = [
        (
            f"`{job}`",
            _number(rate),
            _number(costs[job]["processor_requests"]),
            _number(costs[job]["processor_billed_ms"]),
            _number(costs[job]["ministack_cpu_ms"]),
        )
        for job, rate in results["throughput_records_per_second"].items()
    ]
    real, noop = (costs[job] for job in results["throughput_records_per_second"])
    return [
        f"## Throughput — {COMMAND}",
        "",
        *_table(
            (
                "Job type",
                "Records per second",
                "Processor's AWS requests per record",
                "Processor's billed ms per record",
                "MiniStack's CPU ms per record",
            ),
            rows,
        ),
        "",
        f"Ratio: {_number(results['throughput_ratio'])}. Each job runs 1,000 records through"
        " the same pipeline, fed by MiniStack's poller (batches of at most 10). The rules"
        " add requests to every record: the transition's transaction, the batch's read of"
        " the records' states, and the events. MiniStack answers every request of every"
        " function in one process, on the same two cores as the functions; its CPU per"
        f" record was {_number(real['ministack_cpu_ms'])} ms against"
        f" {_number(noop['ministack_cpu_ms'])} ms, an inverse ratio of"
        f" {_number(round(noop['ministack_cpu_ms'] / real['ministack_cpu_ms'], 2))}. On AWS"
        " each request is served elsewhere.",
    ]


def _cold_start(results: Mapping[str, Any]) -> list[str]:
    rows = [(f"`{name}`", _number(value)) for name, value in results["import_seconds"].items()]
    return [
        f"## Cold start (import seconds) — {COMMAND}",
        "",
        *_table(("Import", "Seconds"), rows),
        "",
        f"Processor / baseline: {_number(results['import_ratio'])}. Planner / baseline: "
        f"{_number(results['import_ratio_planner'])}. Processor / baseline with pydantic: "
        f"{_number(results['import_ratio_over_baseline_with_pydantic'])}.",
        "",
        *_import_breakdown(results),
    ]


def _import_breakdown(results: Mapping[str, Any]) -> list[str]:
    seconds = results["import_seconds"]
    breakdown = results["import_breakdown_ms"]
    over = 1000 * (seconds["processor"] - seconds["baseline_with_pydantic_gc_paused"])
    return [
        "Every handler collects no garbage during its init (`jobkit.cold_start`: the "
        "collector, run again and again while the init's objects pile up, frees almost "
        "nothing), and freezes what the init allocated when the handler is built. The "
        "baselines do not. Against the pydantic baseline paused the same way "
        f"(`baseline_with_pydantic_gc_paused`), the processor's ratio is "
        f"{_number(results['import_ratio_over_baseline_gc_paused_alike'])}: jobkit's own "
        f"import (the medians differ by {over:.0f} ms). Of it, "
        f"{_number(breakdown['jobkit_models_ms'])} ms build jobkit's pydantic models (the "
        "envelopes, config, run rows, settings, events: the boundaries the standards require "
        "models at); the rest is jobkit's modules and what they import beyond the baseline "
        "(Powertools' circuit breaker, boto3's DynamoDB conditions and batch writer, the "
        "standard library's). The goal leaves 5% of the pydantic baseline, "
        f"{50 * seconds['baseline_with_pydantic']:.0f} ms.",
    ]


def _scale(results: Mapping[str, Any]) -> list[str]:
    rows = [
        (
            f"{int(records):,}",
            _number(run["seconds"]),
            _number(run["ms_per_record"]),
            _number(run["latency_ms_p50"]),
            _number(run["latency_ms_p95"]),
            f"`{run['run_id']}`",
        )
        for records, run in results["scale"].items()
    ]
    return [
        f"## Scale — {COMMAND}",
        "",
        *_table(("Records", "Seconds", "ms per record", "p50 ms", "p95 ms", "Run"), rows),
        "",
        "Latency is from enqueue to counted. Spread of the time per record, (max - min) / mean: "
        f"{_number(results['time_per_record_spread'])}.",
    ]


def _backfill(results: Mapping[str, Any]) -> list[str]:
    figures = results["backfill"]
    rows = [
        ("Scheduled run alone", _number(figures["scheduled_ms_per_record_alone"])),
        (
            "Scheduled run beside the backfill",
            _number(figures["scheduled_ms_per_record_beside_backfill"]),
        ),
    ]
    return [
        f"## A scheduled run beside a backfill — {COMMAND}",
        "",
        f"A scheduled run of {figures['records']:,} records of sync-completed-records, timed "
        f"alone and then while a backfill of {figures['records']:,} other records (mode "
        "`missing`, never processed) runs on the backfill lane (`BackfillQueue`, its event "
        "source capped at 2 concurrent batches; the live lane's at 10):",
        "",
        *_table(("Run", "ms per record"), rows),
        "",
        f"Ratio (`backfill_interference`): {_number(results['backfill_interference'])}. The "
        f"backfill took {_number(figures['backfill_seconds'])} s "
        f"(`{figures['backfill_run_id']}`). Both lanes share the machine's two cores with "
        "MiniStack, which is most of what remains.",
    ]


def _planning(results: Mapping[str, Any]) -> list[str]:
    sizes = results["plan"]["sizes"]
    rows = [
        (
            f"{int(size):,}",
            _number(figures["shards"]),
            _number(figures["seconds"]),
            _number(round(1000 * figures["seconds_per_client"], 3)),
            _number(figures["config_query_pages"]),
            _number(figures["query_overhead_seconds"]),
            _number(figures["seconds_less_partition_sort"]),
            _number(figures["planner_cpu_seconds"]),
            _number(figures["emulator_cpu_seconds"]),
            _number(figures["peak_memory_mb"]),
        )
        for size, figures in sizes.items()
    ]
    largest = sizes[list(sizes)[-1]]
    requests = [(f"`{op}`", _number(count)) for op, count in largest["requests"].items()]
    lines = [
        f"## Planning at scale — {COMMAND}",
        "",
        "One scheduled fire of the bench-noop planner per size (config rows only), in "
        f"shards of {results['plan']['shard_clients']:,} clients as on AWS, timed until the "
        "last shard marked the run running:",
        "",
        *_table(
            (
                "Clients",
                "Shards",
                "Seconds",
                "ms per client",
                "Config Query pages",
                "One-row Query, s",
                "Seconds less the partition sort",
                "Planner CPU s",
                "MiniStack CPU s",
                "Peak memory MB",
            ),
            rows,
        ),
        "",
        "Spread of the time per client, (max - min) / mean: "
        f"{_number(results['plan_seconds_per_client_spread'])}; less MiniStack's partition "
        f"sort: {_number(results['plan']['seconds_per_client_spread_less_partition_sort'])}. "
        "MiniStack answers every Query page by copying and sorting the job's whole config "
        "partition (the one-row Query column), so its pages cost more as the partition grows; "
        "a DynamoDB Query page reads only its own rows. The column before last takes, off "
        "each page, what the one-row Query costs past the smallest size's. The planner works "
        "a chunk of 2,000 clients at a time (their rows by two writers at once, then their "
        "page items 8 requests at a time), and holds one shard's config rows, so its memory "
        "does not grow past a shard's. The two CPU columns say where a fire's time went on "
        "this machine's two cores: the planner's own CPU (its `shard planned` lines, summed) "
        "and MiniStack's process, which serves every request on one core at most (one Python "
        "process): its CPU seconds are a floor under the fire's duration on this stack, "
        "however many shards plan at once.",
        *_per_client(sizes),
        *_sharded(sizes),
        "",
        f"The planner's requests at {int(list(sizes)[-1]):,} clients:",
        "",
        *_table(("Operation", "Requests"), requests),
    ]
    reads = next((f["api_reads"] for f in sizes.values() if f.get("api_reads")), None)
    if reads:
        api = [
            (path, _number(reads[name]["seconds"]), _number(reads[name]["kilobytes"]))
            for name, path in (("health", "`GET /health`"), ("run", "`GET /runs/{id}`"))
        ]
        lines += ["", "Reads while the run of 10,000 clients is open, one call each:", ""]
        lines += _table(("Call", "Seconds", "KB"), api)
    return lines + ["", *_million(results)]


def _per_client(sizes: Mapping[str, Any]) -> list[str]:
    """The work per client at each size, and its spread: what the planner does per client
    against what the emulator spends on it."""

    def per_client(figure: Callable[[Mapping[str, Any]], float], scale: float) -> list[float]:
        return [scale * figure(sizes[size]) / int(size) for size in sizes]

    measures = [
        ("AWS requests", per_client(lambda f: sum(f["requests"].values()), 1.0), 3),
        ("ms of the planner's CPU", per_client(lambda f: f["planner_cpu_seconds"], 1000.0), 2),
        ("ms of MiniStack's CPU", per_client(lambda f: f["emulator_cpu_seconds"], 1000.0), 2),
    ]
    parts = [
        f"{name} {' / '.join(_number(round(v, digits)) for v in values)} (spread "
        f"{_number(round((max(values) - min(values)) / statistics.mean(values), 2))})"
        for name, values, digits in measures
    ]
    return [
        "",
        f"Per client, at {' / '.join(f'{int(size):,}' for size in sizes)} clients: "
        + "; ".join(parts)
        + ". The planner's requests per client stay flat; what grows is MiniStack's CPU "
        "for them.",
    ]


def _sharded(sizes: Mapping[str, Any]) -> list[str]:
    """What planning in shards does to a fire on this stack, at the largest size."""
    size = list(sizes)[-1]
    largest = sizes[size]
    if largest["shards"] <= 1:
        return []
    return [
        "",
        f"At {int(size):,} clients, {largest['shards']} shards planned at once, on two cores "
        f"shared with MiniStack: MiniStack used {_number(largest['emulator_cpu_seconds'])} s "
        f"of CPU and the planner {_number(largest['planner_cpu_seconds'])} s, over "
        f"{_number(largest['seconds'])} s. Each shard's Query pages are sorted over the whole "
        f"partition ({_number(largest['config_query_pages'])} pages in all, the shards' "
        "first and last pages included), and one process serves every shard's requests. On "
        "AWS each shard has its own CPU, and a Query page costs the same at any partition "
        "size: the shards overlap instead of queueing.",
    ]


# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769


def _million(results: Mapping[str, Any]) -> list[str]:
    """1,000,000 clients on AWS, on paper, from the measured requests and CPU per client."""
    sizes = results["plan"]["sizes"]
    size = list(sizes)[-1]
    largest, clients = sizes[size], int(size)
    timeout = results["plan"]["planner_timeout_seconds"]
    per_client = sum(largest["requests"].values()) / clients
    rows_per_page = clients / max(1, largest["config_query_pages"])
    cpu_ms = 1000 * largest["planner_cpu_seconds"] / clients
    memory = largest["memory_size_mb"]
    vcpu = min(1.0, memory / FULL_VCPU_MB)
    cpu_ms_aws = cpu_ms / vcpu
    holds = int(1000 * timeout / cpu_ms_aws)
    shard = results["plan"]["shard_clients"]
    per_shard_cpu = shard * cpu_ms_aws / 1000
    shards = -(-1_000_000 // shard)
    return [
        "### 1,000,000 clients on AWS, on paper",
        "",
        f"Measured at {clients:,} clients: {per_client:.3f} requests per client (ten page "
        "items per SendMessageBatch, 25 client rows per BatchWriteItem, 100 circuits per "
        f"BatchGetItem, about {rows_per_page:,.0f} config rows per Query page) and "
        f"{cpu_ms:.2f} ms of the planner's own CPU per client; peak "
        f"{_number(largest['peak_memory_mb'])} MB (a shard's config rows, and one chunk of "
        f"2,000 clients at work). On AWS the planner has {memory:,} MB, for which Lambda "
        f"gives {vcpu:.2f} of a vCPU (a full one at {FULL_VCPU_MB:,} MB). Taking a core of "
        f"this machine for a vCPU, that is {cpu_ms_aws:.1f} ms of CPU per client, so one "
        f"invocation would hold about {holds:,} clients in its {timeout} s timeout before any "
        "wait on DynamoDB or SQS.",
        "",
        f"So planning fans out: a shard is {shard:,} clients (`PlanShardClients`), "
        f"about {per_client * shard:,.0f} requests and {per_shard_cpu:.0f} s of "
        f"CPU, {per_shard_cpu / timeout:.0%} of the timeout. 1,000,000 clients are {shards} "
        "shards. Each reads its range first (about "
        f"{shard / rows_per_page:.0f} Query pages), fixes its end, starts the "
        "next shard by invoking the planner asynchronously, then plans its clients: the "
        "shards overlap, each starting once the one before has read its range, and the run "
        "is running when the last one is planned (`jobkit.runs.shards`).",
    ]


def _slow_external(results: Mapping[str, Any]) -> list[str]:
    slow = results["slow_external"]
    poller = slow["poller"]
    rows = [
        (
            "ms per record",
            _number(results["ms_per_record_aws_batches"]),
            _number(slow["ms_per_record"]),
        ),
        (
            "DynamoDB write requests per record",
            _number(results["dynamodb_writes_per_item"]),
            _number(slow["dynamodb_writes_per_item"]),
        ),
        (
            "SQS requests per record",
            _number(results["sqs_requests_per_item"]),
            _number(slow["sqs_requests_per_item"]),
        ),
        (
            "External calls per record",
            _number(results["external_calls_per_item"]),
            _number(slow["external_calls_per_item"]),
        ),
    ]
    return [
        f"## A slow external system, batches of 50 — {COMMAND}",
        "",
        f"The same run of {slow['records']:,} records fed by the AWS-sized poller, then again "
        f"with every external call {slow['latency_ms_added']} ms slower:",
        "",
        *_table(("Per record", "As is", f"+{slow['latency_ms_added']} ms"), rows),
        "",
        f"Batches: {poller['batches']} (largest {poller['largest_batch']}); function errors "
        f"{poller['function_errors']}, timeouts {poller['timeouts']}; longest invocation "
        f"{_number(poller['longest_invocation_seconds'])} s; items put back by the time "
        f"budget {poller['item_failures']}.",
    ]


def render(results: Mapping[str, Any]) -> str:
    """The whole page, from a results dict as `make bench` writes it."""
    sections = [
        [
            "# Performance",
            "",
            "<!-- Generated by `python -m bench.performance_page` from bench/results.json; "
            "do not edit. -->",
            "",
            "Every figure on this page comes from `bench/results.json`, which `make bench` "
            "writes (`bench/run.py`, about 35 minutes on a fresh stack). The page itself is "
            "generated from that file by `python -m bench.performance_page`. Measured on the "
            "local stack (MiniStack), not on AWS.",
        ],
        _goals(results),
        _requests(results),
        _cost(results),
        _throughput(results),
        _cold_start(results),
        _scale(results),
        _backfill(results),
        _slow_external(results),
        _planning(results),
        [HOW_MEASURED.format(samples=IMPORT_SAMPLES).rstrip("\n")],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def load(path: Path = RESULTS) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(path.read_text())
    return results


def main() -> None:
    PAGE.write_text(render(load()))
    print(f"written: {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
