"""What a finished run tells CloudWatch: its duration and processed ratio (the alarm's
input), and its completion log line."""

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from jobkit.observability import logger
from jobkit.runs.models import RunHeader, RunStatus, processed_ratio


def report_run_finished(header: RunHeader, final: RunStatus, finished_at: datetime) -> None:
    started = header.started_at or header.created_at
    duration = (finished_at - started).total_seconds()
    ratio = processed_ratio(header.received, header.processed)
    for name, unit, value in (
        ("RunDuration", MetricUnit.Seconds, duration),
        ("ProcessedRatio", MetricUnit.Percent, ratio),  # the alarm's input: < 95 pages
    ):
        with single_metric(
            name=name, unit=unit, value=value, default_dimensions={"job_type": header.job_type}
        ) as metric:
            metric.add_metadata("run_id", header.run_id)
    average = round(1000 * duration / header.received, 3) if header.received else None
    logger.info(
        "run completed",
        extra={
            "run_id": header.run_id,
            "job_type": header.job_type,
            "status": final.value,
            "clients": header.clients,
            "received": header.received,
            "processed": header.processed,
            "errors": header.failed,
            "skipped": header.skipped,
            "dead_lettered": header.dead_lettered,
            "duration_seconds": round(duration, 3),
            "average_item_ms": average,
        },
    )
