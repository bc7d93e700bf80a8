"""Job types: one module each. Register a new one here (``jobkit new`` does it for you).

Each is named with the module that declares it, and imported on first use: the shared
processor pays at cold start for none of them, and later only for those it meets.
"""

from jobkit.domain.job import JobRegistry

JOBS = JobRegistry(
    {
        "sync-completed-records": "jobs.sync_completed_records",
        "sync-contacts": "jobs.sync_contacts",
        "bench-noop": "jobs.bench_noop",
        # jobkit:job-entries
    }
)
