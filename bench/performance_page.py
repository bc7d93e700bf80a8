"""docs/performance.md, rendered from bench/results.json.

`make bench` measures and writes bench/results.json; `python -m bench.performance_page`
writes the page from it. The page is never edited by hand: a unit test checks that the
committed page is what this module renders from the committed results.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cost import DYNAMODB_WRITE_UNIT, MILLION
from bench.run import GOALS, IMPORT_SAMPLES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
PAGE = ROOT / "docs" / "performance.md"
COMMAND = "`make bench`"

# What each goal of bench/run.py's GOALS measures, in words ({…} from the results).
GOAL_LABELS: dict[str, str] = {
    "dynamodb_writes_per_item": "DynamoDB write requests per record (batches of 50, as on AWS)",
    "sqs_requests_per_item": "SQS requests per record",
    "external_calls_per_item": "External calls per record",
    "cost_ratio_naive_over_ours": "Cost per 1M records, naive build / jobkit",
    "throughput_ratio": "Throughput, sync-completed-records / bench-noop",
    "import_ratio": "Processor import time / baseline handler's",
    "plan_seconds": "Seconds to plan one run of {plan_clients} clients",
    "time_per_record_spread": "Spread of the time per record at {sizes} records",
}

# Every top-level key of bench/results.json that this page renders.
RENDERED_KEYS = frozenset(
    {
        "import_seconds",
        "import_ratio",
        "import_ratio_planner",
        "import_ratio_over_baseline_with_pydantic",
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
        "scale",
        "time_per_record_spread",
        "plan",
        "plan_seconds",
        "backfill",
        "backfill_interference",
    }
)

# Names for the results' service keys; a key not named here is shown as it is.
SERVICES: dict[str, str] = {
    "lambda": "Lambda",
    "sqs": "SQS (SDK requests, and the event sources' receives and deletes)",
    "dynamodb": "DynamoDB on demand",
    "eventbridge": "EventBridge",
    "events": "EventBridge",
    "scheduler": "EventBridge Scheduler",
    "secretsmanager": "Secrets Manager",
    "cloudwatch_logs": "CloudWatch Logs (EMF metrics included)",
}

# The floor of exactly-once processing, per record: the idempotency record (2 write units)
# and the guarded transition with its history row (4 write units).
FLOOR_WRITE_UNITS = 6

# {samples}: bench/run.py's IMPORT_SAMPLES.
HOW_MEASURED = """\
## How it is measured, and what differs from AWS

- **Where.** On the local stack (MiniStack) on the machine that ran `make bench`, not on AWS.
  `make bench` (`bench/run.py`) deploys the stack, times imports while it is idle, warms both
  jobs with a small run, then measures. Sizes can be lowered for a quick look:
  `JOBKIT_BENCH_SIZES=1000 JOBKIT_BENCH_PLAN_CLIENTS=500 make bench`.
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
- **Cold start.** Median of {samples} fresh interpreters importing the processor and the
  planner from the built function and layer (bytecode included, as deployed), with the
  runtime's boto3, against a baseline handler that creates Powertools' Logger, Metrics,
  Tracer, an SQS BatchProcessor, a DynamoDBPersistenceLayer and one boto3 client. The second
  baseline adds `import pydantic` and one model. The processor and planner build rarely used
  parts on first use (the HTTP client, API models, Parameters, the SQS client), and job
  modules are imported on the first item of their type (`jobs.JOBS`).
- **Throughput.** `bench-noop` fetches and acknowledges the same pages through the same
  planner, queue, idempotency and counting, and skips every record: the difference is the
  rules (the record's read, the guarded transaction, its event). Both share the machine's
  cores with MiniStack.
- **Time per record and latency.** Each run's time is its header's `finished_at -
  created_at`; the bench waits by reading the run's header (one GetItem). Latency is the
  processor's `RecordLatency` metric, from enqueue to counted.
- **Planning.** Config rows only, no external data; the run is cancelled once the API reads
  are made, and its page items are skipped.
- **API reads.** One `GET /health` and one `GET /runs/{{id}}` through API Gateway while the
  planned run is open; for `GET /health` the same clients are configured, disabled, for
  sync-completed-records. MiniStack answers the health page's client count (`Select=COUNT`)
  by reading every row.
- **Cost.** `bench/cost.py`: us-east-1 on-demand prices, Lambda arm64 at the configured
  memory and the billed durations the local stack reported (slower than Lambda, so an upper
  bound). The naive build is priced from the same run, changing only one SendMessage, one
  counter update and one acknowledgement per record.
"""


def _number(value: Any) -> str:
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
    context = {"plan_clients": f"{results['plan']['clients']:,}", "sizes": _sizes(results)}
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
        "then completed); `TransactWriteItems` is the guarded transition with its history row, "
        "plus one counting transaction per run per batch; `PutEvents` carries ten domain events "
        "a request.",
    ]


def _cost(results: Mapping[str, Any]) -> list[str]:
    ours = results["cost_per_million_records_usd"]
    naive = results["naive_cost_per_million_records_usd"]
    rows = [(_service(key), _dollars(ours[key]), _dollars(naive[key])) for key in ours]
    ours_total = results["cost_per_million_records_usd_total"]
    naive_total = results["naive_cost_per_million_records_usd_total"]
    rows.append(("**Total**", f"**{_dollars(ours_total, 2)}**", f"**{_dollars(naive_total, 2)}**"))
    floor = FLOOR_WRITE_UNITS * DYNAMODB_WRITE_UNIT * MILLION
    return [
        f"## Cost per 1M records on AWS (USD) — {COMMAND}",
        "",
        *_table(("Service", "jobkit", "Naive build"), rows),
        "",
        f"Ratio naive / jobkit: {_number(results['cost_ratio_naive_over_ours'])}.",
        "",
        "Both builds pay the floor of exactly-once processing per record: the idempotency "
        "record (2 write units) and the guarded transition with its history row (4 units), "
        f"{_dollars(floor, 2)} per million records. Whatever the rest costs, the ratio cannot "
        f"pass {_dollars(naive_total, 2)} / {_dollars(floor, 2)} = {naive_total / floor:.2f}. "
        "Going further means cutting that floor, which changes the guarantees.",
    ]


def _throughput(results: Mapping[str, Any]) -> list[str]:
    rows = [
        (f"`{job}`", _number(rate))
        for job, rate in results["throughput_records_per_second"].items()
    ]
    return [
        f"## Throughput — {COMMAND}",
        "",
        *_table(("Job type", "Records per second"), rows),
        "",
        f"Ratio: {_number(results['throughput_ratio'])}.",
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
    plan = results["plan"]
    requests = [(f"`{operation}`", _number(count)) for operation, count in plan["requests"].items()]
    reads = plan["api_reads"]
    api = [
        (path, _number(reads[name]["seconds"]), _number(reads[name]["kilobytes"]))
        for name, path in (("health", "`GET /health`"), ("run", "`GET /runs/{id}`"))
    ]
    return [
        f"## Planning {plan['clients']:,} clients — {COMMAND}",
        "",
        f"One run planned in {_number(plan['seconds'])} s. The planner's requests:",
        "",
        *_table(("Operation", "Requests"), requests),
        "",
        "Reads while that run is open, one call each:",
        "",
        *_table(("Call", "Seconds", "KB"), api),
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
            "writes (`bench/run.py`, about 15 minutes). The page itself is generated from that "
            "file by `python -m bench.performance_page`. Measured on the local stack "
            "(MiniStack), not on AWS.",
        ],
        _goals(results),
        _requests(results),
        _cost(results),
        _throughput(results),
        _cold_start(results),
        _scale(results),
        _backfill(results),
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
