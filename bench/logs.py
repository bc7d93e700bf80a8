"""Every function's log lines in a time window, added up: the requests each invocation
counted at the SDK, billed milliseconds and memory, log bytes, record latencies."""

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from jobkit_cli.logs import function_log_groups, log_events
from jobkit_cli.stack import Stack

_REPORT = re.compile(r"Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB")


@dataclass
class FunctionLogs:
    requests: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)  # EventBridge bills per entry
    billed_ms: int = 0
    invocations: int = 0
    memory_mb: int = 0
    # The planner's own peak (its "shard planned" lines, jobkit.tooling.peak_memory):
    # MiniStack's REPORT lines give the peak of its finished child processes, not the
    # function's.
    max_memory_used_mb: int = 0
    cpu_seconds: float = 0.0  # the planner's CPU over its shards ("shard planned")
    shards: int = 0
    log_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def function_name(stack: Stack, group: str) -> str:
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
        figures = by_function[function_name(stack, group)]
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
    elif '"shard planned"' in message:
        line = json.loads(message[message.index("{") :])
        peak = int(line.get("peak_memory_mb") or 0)
        figures.max_memory_used_mb = max(figures.max_memory_used_mb, peak)
        figures.cpu_seconds += float(line.get("cpu_seconds") or 0.0)
        figures.shards += 1
    elif '"RecordLatency"' in message:
        value = json.loads(message[message.index("{") :])["RecordLatency"]
        figures.latencies_ms += value if isinstance(value, list) else [value]
