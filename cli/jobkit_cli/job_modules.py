"""The checkout's job modules (``functions/jobs``), for what the CLI checks before it writes.

The CLI is installed apart from the functions' code, but always runs inside a checkout: the
job registry is imported from it, as the functions import it.
"""

import sys
from typing import Any

from jobkit.domain.job import Job
from jobkit_cli.paths import project_root


def job(job_type: str) -> Job[Any]:
    """The job type as the checkout declares it; LookupError naming the job types there if
    it has no such one."""
    functions = str(project_root() / "functions")
    if functions not in sys.path:
        sys.path.insert(0, functions)
    from jobs import JOBS

    if job_type not in JOBS:
        raise LookupError(f"unknown job type {job_type!r} (job types: {', '.join(JOBS)})")
    return JOBS[job_type]


def config_fields(job_type: str) -> frozenset[str]:
    """The query fields ``job_type`` uses (``Job.config_fields``)."""
    return job(job_type).config_fields
