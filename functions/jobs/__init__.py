"""Job types: one module each. Register a new one here (``jobkit new`` does it for you)."""

from typing import Any

from jobkit.job import Job
from jobs import bench_noop, sync_completed_records, sync_contacts

# jobkit:job-imports

JOBS: dict[str, Job[Any]] = {
    job.name: job
    for job in (
        sync_completed_records.JOB,
        sync_contacts.JOB,
        bench_noop.JOB,
        # jobkit:job-entries
    )
}
