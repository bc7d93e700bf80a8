"""Planning in shards on the stack: past the planner's shard size (100 clients on the local
stack, ``PlanShardClients``), the planner starts its run's next shards by invoking itself
asynchronously, and the run is running once the last is planned."""

import uuid

import pytest

from jobkit.adapters.config import ClientConfig
from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import RunStatus
from jobkit.runs.queries import RunQueries
from jobkit_cli.seed import seed_client
from jobkit_cli.stack import Stack
from tests.integration.conftest import wait_for_run

pytestmark = pytest.mark.integration

NOOP = "bench-noop"  # a job of its own: a run of every client plans only this test's


def test_a_run_past_the_shard_size_is_planned_in_shards_and_processes_every_client(
    stack: Stack, runs: RunQueries
) -> None:
    # Given 250 clients of a job, three of them enabled, one in each shard of 100
    tag = uuid.uuid4().hex[:6]
    ids = [f"shard{tag}-{n:03d}" for n in range(250)]
    enabled = [ids[5], ids[120], ids[230]]
    configs = stack.table("ConfigTableName")
    with configs.batch_writer() as batch:
        for client_id in ids:
            if client_id not in enabled:
                config = ClientConfig(
                    job_type=NOOP, client_id=client_id, group_id="north", enabled=False
                )
                batch.put_item(Item=config.to_item())
    for client_id in enabled:
        seed_client(stack, job_type=NOOP, client_id=client_id, group_id="north", records=4)
    try:
        # When a run of every client is asked for
        planned = stack.invoke(stack.planners[NOOP], {"trigger": "cli"})
        view = wait_for_run(runs, planned["run_id"])
        # Then the invocation planned the first shard, the shards it started planned the
        # rest, and every enabled client's records were done once (the job skips each)
        shards = open_ledger(stack.table("RunsTableName")).shards.rows(planned["run_id"])
        assert len(shards) >= 3
        assert all(shard.finished_at is not None for shard in shards)
        assert view.header.status is RunStatus.SUCCEEDED
        ours = {c.client_id: c for c in view.clients if c.client_id.startswith(f"shard{tag}")}
        assert sorted(ours) == enabled
        assert [(ours[c].received, ours[c].skipped) for c in enabled] == [(4, 4)] * 3
    finally:
        with configs.batch_writer() as batch:
            for client_id in ids:
                batch.delete_item(Key={"job_type": NOOP, "client_id": client_id})
