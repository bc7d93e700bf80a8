"""`jobkit new`: a generated job type deploys and runs, and its generated test passes."""

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobkit.runs.models import RunStatus
from jobkit_cli import localstack
from jobkit_cli.runs_view import run_store
from jobkit_cli.scaffold import scaffold
from jobkit_cli.seed import seed_client
from jobkit_cli.stack import Stack, load_local_state
from tests.integration.conftest import acks, wait_for_run
from tests.support import copy_project

pytestmark = pytest.mark.integration
NEW_JOB = "scaffold-check"


def test_generated_job_type_deploys_and_runs(
    stack: Stack, tmp_path: Path, external: httpx.Client
) -> None:
    # Given a copy of the project with a new job type scaffolded in one step
    copy_project(tmp_path)
    scaffold(tmp_path, NEW_JOB)
    generated_test = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"tests/unit/test_job_{NEW_JOB.replace('-', '_')}.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated_test.returncode == 0, generated_test.stdout[-2000:]
    # When it is deployed as its own stack and its planner fires
    state = load_local_state()
    assert state is not None
    localstack.deploy(state, root=tmp_path, stack_name="jobkit-scaffold")
    deployed = Stack("jobkit-scaffold", stack.region, stack.endpoint_url, stack.external_url)
    client = f"scaffold-{uuid.uuid4().hex[:8]}"
    seed_client(deployed, job_type=NEW_JOB, client_id=client, group_id="north", records=5)
    planned: dict[str, Any] = deployed.invoke(
        deployed.planners[NEW_JOB], {"trigger": "cli", "client_ids": [client]}
    )
    # Then the run goes through the whole pipeline: every record skipped, nothing acked
    view = wait_for_run(run_store(deployed), planned["run_id"])
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.skipped, view.header.processed) == (5, 5, 0)
    assert acks(external, client) == 0
