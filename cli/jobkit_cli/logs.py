"""Reading a function's CloudWatch Logs on the stack, however many lines there are."""

import time
from typing import Any

# MiniStack answers FilterLogEvents with at most this many events and no next token.
EVENTS_PER_ANSWER = 10_000


def log_events(
    logs: Any, group: str, start_ms: int = 0, end_ms: int | None = None
) -> list[dict[str, Any]]:
    """Every event of a log group in a time window: a window that comes back full is split in
    two until each half fits in one answer."""
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000) + 60_000
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "endTime": end_ms}
    events: list[dict[str, Any]] = []
    while True:
        page = logs.filter_log_events(**kwargs)
        events += page.get("events", [])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    if len(events) < EVENTS_PER_ANSWER or end_ms - start_ms <= 1:
        return events
    middle = (start_ms + end_ms) // 2
    return log_events(logs, group, start_ms, middle) + log_events(logs, group, middle + 1, end_ms)


def function_log_groups(logs: Any) -> list[str]:
    groups: list[str] = []
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/"):
        groups += [group["logGroupName"] for group in page["logGroups"]]
    return groups
