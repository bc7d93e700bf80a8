"""Settle: the batch's metrics, per job type (EMF): received, processed, skipped, failed,
dead-lettered, put back for lack of time, the mean time per record item, and each counted
record's latency from enqueue."""

from collections import defaultdict
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric

from jobkit.pipeline.batch import AckDue, CountedItem, FetchedPage, Unstarted
from jobkit.runs.models import Outcome

_LATENCY_VALUES_PER_LINE = 50  # Powertools flushes by itself at 100 values
_COUNTER = {
    Outcome.PROCESSED: "RecordsProcessed",
    Outcome.SKIPPED: "RecordsSkipped",
    Outcome.FAILED: "RecordsFailed",
}


def emit(
    pages: list[FetchedPage],
    counted: list[CountedItem],
    unstarted: list[Unstarted],
    unacknowledged: list[AckDue],
    item_ms: dict[str, list[float]],
) -> None:
    """``counted``: only the outcomes now on their runs."""
    per_job: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for page in pages:
        per_job[page.item.job_type]["RecordsReceived"] += page.result.records
    for returned in unstarted:
        per_job[returned.item.job_type]["ItemsReturnedUnstarted"] += 1
    for unacked in unacknowledged:
        per_job[unacked.item.job_type]["ItemsReturnedUnacknowledged"] += 1
    for entry in counted:
        per_job[entry.item.job_type][_COUNTER[entry.outcome.outcome]] += 1
        if entry.outcome.dead_lettered:
            per_job[entry.item.job_type]["DeadLettered"] += 1
    for job_type, values in per_job.items():
        for name, value in values.items():
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=value,
                default_dimensions={"job_type": job_type},
            ):
                pass
    _emit_latency(counted)
    for job_type, durations in item_ms.items():
        with single_metric(
            name="ItemDuration",
            unit=MetricUnit.Milliseconds,
            value=sum(durations) / len(durations),  # the batch's mean per record item
            default_dimensions={"job_type": job_type},
        ) as metric:
            metric.add_metadata("items", len(durations))


def _emit_latency(counted: list[CountedItem]) -> None:
    """Enqueue to counted, per record item: how long a client's records wait. EMF value lists
    (at most 100 values each), so CloudWatch can tell p50 and p95."""
    now = datetime.now(UTC)
    per_job: dict[str, list[float]] = defaultdict(list)
    for entry in counted:
        enqueued = entry.item.enqueued_at
        if enqueued.tzinfo is None:  # a hand-made envelope: read it as UTC
            enqueued = enqueued.replace(tzinfo=UTC)
        per_job[entry.item.job_type].append((now - enqueued).total_seconds() * 1000)
    for job_type, latencies in per_job.items():
        for start in range(0, len(latencies), _LATENCY_VALUES_PER_LINE):
            latency = EphemeralMetrics()
            latency.add_dimension(name="job_type", value=job_type)
            for value in latencies[start : start + _LATENCY_VALUES_PER_LINE]:
                latency.add_metric(name="RecordLatency", unit=MetricUnit.Milliseconds, value=value)
            latency.flush_metrics()
