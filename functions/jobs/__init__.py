"""Job types: one module each. Register a new one here (``jobkit new`` does it for you)."""

from typing import Any

from jobkit.job import Job
from jobs import sync_completed_records, sync_contacts

# jobkit:job-imports

JOBS: dict[str, Job[Any]] = {
    job.name: job
    for job in (
        sync_completed_records.JOB,
        sync_contacts.JOB,
        # jobkit:job-entries
    )
}
