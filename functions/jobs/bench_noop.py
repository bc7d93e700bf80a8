"""bench-noop: the pipeline with no rule, the yardstick `make bench` holds the real jobs to.

It fetches and acknowledges exactly what `sync-completed-records` does, through the same
planner, queue, idempotency, counting and acks, and decides nothing: every record is skipped.
The difference in throughput is the price of the platform's rules (the guarded workflow write
and the status event). Its planner exists on the local stack only (template condition
IsLocal): acknowledging records without applying them would lose them on a real system.
"""

from jobkit.adapters.config import ClientConfig
from jobkit.domain.job import Job, Skip
from jobs.sync_completed_records import CONFIG_FIELDS, CompletedRecord, acknowledge, fetch_page


def process(record: CompletedRecord, client: ClientConfig) -> Skip:
    return Skip("bench-noop applies no rule")


JOB = Job(
    name="bench-noop",
    description="No rule: the pipeline's own cost, measured by make bench (local stack only).",
    record_model=CompletedRecord,
    fetch_page=fetch_page,
    process=process,
    acknowledge=acknowledge,
    config_fields=CONFIG_FIELDS,
    windowed=True,  # the same fetch as sync-completed-records
)
