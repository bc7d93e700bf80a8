"""`make bench`: how much a concurrent backfill holds back a scheduled run.

A run of sync-completed-records is timed alone, then again while a backfill of the same size
(other clients, records never processed, mode ``missing``) runs on its own lane: the ratio of
its time per record with and without the backfill is ``backfill_interference``.
"""

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import FINAL_STATUSES
from jobkit_cli.stack import Stack


class TimedRun(Protocol):
    run_id: str
    records: int
    seconds: float


def _start_backfill(stack: Stack, job: str, client_ids: list[str]) -> str:
    """The backfill, planned by the job's planner as the API asks it to (over the last day)."""
    now = datetime.now(UTC)
    run_id = f"{job}.backfill.bench{uuid.uuid4().hex[:8]}"
    window = {"start": (now - timedelta(days=1)).isoformat(), "end": now.isoformat()}
    stack.invoke(
        stack.planners[job],
        {
            "trigger": "backfill",
            "run_id": run_id,
            "requested_by": "bench",
            "client_ids": client_ids,
            "backfill": {"window": window, "mode": "missing"},
        },
    )
    return run_id


def _wait(stack: Stack, run_id: str) -> float:
    """Seconds from the run's opening to its close, once it closes."""
    runs = open_ledger(stack.table("RunsTableName")).queries
    while True:
        header = runs.header(run_id)
        if header is not None and header.status in FINAL_STATUSES:
            assert header.finished_at is not None
            return (header.finished_at - header.created_at).total_seconds()
        time.sleep(1.0)


def backfill_interference(
    stack: Stack,
    job: str,
    records: int,
    run_job: Callable[[Stack, str, int], TimedRun],
    seed: Callable[[Stack, str, int], list[str]],
    forget: Callable[[Stack, str, list[str]], None],
) -> dict[str, Any]:
    """The scheduled run's time per record alone and beside a backfill of ``records``."""
    alone = run_job(stack, job, records)
    backfill_clients = seed(stack, job, records)
    backfill = _start_backfill(stack, job, backfill_clients)
    beside = run_job(stack, job, records)
    backfill_seconds = _wait(stack, backfill)
    forget(stack, job, backfill_clients)
    alone_ms = 1000 * alone.seconds / alone.records
    beside_ms = 1000 * beside.seconds / beside.records
    return {
        "records": records,
        "scheduled_ms_per_record_alone": round(alone_ms, 2),
        "scheduled_ms_per_record_beside_backfill": round(beside_ms, 2),
        "backfill_run_id": backfill,
        "backfill_seconds": round(backfill_seconds, 1),
        "ratio": round(beside_ms / alone_ms, 2),
    }
