"""Two stacks of the same template side by side (staging beside production): nothing of one
collides with or reaches into the other, and deleting one keeps its data."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobkit.runs.models import RunStatus
from jobkit_cli import localstack
from jobkit_cli.runs_view import run_store
from jobkit_cli.seed import seed_client
from jobkit_cli.stack import Stack, load_local_state
from tests.integration.conftest import JOB, acks, wait_for_run, wait_until

pytestmark = pytest.mark.integration
SECOND = "jobkit-local-second"


@pytest.fixture(scope="module")
def second(stack: Stack) -> Iterator[Stack]:
    state = load_local_state()
    assert state is not None
    # The account's API Gateway role exists once per region: the first stack made it
    localstack.deploy(state, stack_name=SECOND, overrides={"CreateApiGatewayAccountRole": "false"})
    yield Stack(SECOND, stack.region, stack.endpoint_url, stack.external_url)


def _schedule_targets(stack: Stack) -> dict[str, str]:
    scheduler = stack.client("scheduler")
    group = stack.outputs["ScheduleGroupName"]
    listed = scheduler.list_schedules(GroupName=group)["Schedules"]
    return {s["Name"]: s["Target"]["Arn"] for s in listed}


def _process_group_members(pgid: int) -> list[str]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid:
            members.append(cmdline)
    return members


def test_two_stacks_run_their_own_jobs_side_by_side(
    stack: Stack, second: Stack, external: httpx.Client
) -> None:
    # Given a client on each stack
    clients = {}
    for each in (stack, second):
        client_id = f"side-{uuid.uuid4().hex[:8]}"
        seed_client(each, job_type=JOB, client_id=client_id, group_id="north", records=6)
        clients[each.name] = client_id
    # When each stack's planner runs its job
    runs = {
        each.name: each.invoke(
            each.planners[JOB], {"trigger": "cli", "client_ids": [clients[each.name]]}
        )["run_id"]
        for each in (stack, second)
    }
    # Then each run closes on its own stack, with its own client's records only
    for each in (stack, second):
        view = wait_for_run(run_store(each), runs[each.name])
        assert view.header.status is RunStatus.SUCCEEDED
        assert [c.client_id for c in view.clients] == [clients[each.name]]
        assert (view.header.received, view.header.processed) == (6, 6)
        assert acks(external, clients[each.name]) == 6
    # Each stack's schedules are its own, in its own group, invoking its own planners
    first_targets, second_targets = _schedule_targets(stack), _schedule_targets(second)
    assert len(first_targets) == len(second_targets) >= 4
    assert stack.outputs["ScheduleGroupName"] != second.outputs["ScheduleGroupName"]
    for each, targets in ((stack, first_targets), (second, second_targets)):
        planner = each.outputs["PlannerSyncCompletedRecordsName"]
        assert targets["PlannerSyncCompletedRecordsSchedule"].endswith(f":function:{planner}")
        assert all(f":function:{each.name}-" in arn for arn in targets.values()), targets
    # Nor do their functions share a layer or a retry worker
    lambdas = stack.client("lambda")
    layers = {
        each.name: lambdas.get_function_configuration(
            FunctionName=each.outputs["ProcessorFunctionName"]
        )["Layers"][0]["Arn"]
        for each in (stack, second)
    }
    assert layers[stack.name] != layers[SECOND]
    assert stack.outputs["RetryWorkerName"] != second.outputs["RetryWorkerName"]
    # And `jobkit down`, which stops MiniStack's process group, stops both stacks' functions
    state = load_local_state()
    assert state is not None
    members = _process_group_members(state.ministack_pid)
    for each in (stack, second):
        processor = each.outputs["ProcessorFunctionName"]
        assert any(processor in member for member in members), (processor, members)


def test_deleting_a_stack_keeps_its_data_and_removes_its_schedules(second: Stack) -> None:
    # Given the second stack, with a client's configuration in its table
    outputs = dict(second.outputs)
    config_table = outputs["ConfigTableName"]
    rows = second.client("dynamodb").scan(TableName=config_table, Select="COUNT")["Count"]
    assert rows >= 1
    # When the stack is deleted
    cloudformation = second.client("cloudformation")
    cloudformation.delete_stack(StackName=SECOND)

    def deleted() -> bool:
        try:
            [described] = cloudformation.describe_stacks(StackName=SECOND)["Stacks"]
        except cloudformation.exceptions.ClientError:
            return True
        return str(described["StackStatus"]) == "DELETE_COMPLETE"

    wait_until(deleted, timeout=180, what="the second stack to be deleted")
    # Then its tables and dead-letter queues remain, with their data (DeletionPolicy: Retain)
    dynamodb, sqs = second.client("dynamodb"), second.client("sqs")
    assert dynamodb.scan(TableName=config_table, Select="COUNT")["Count"] == rows
    assert dynamodb.describe_table(TableName=outputs["RunsTableName"])["Table"]
    sqs.get_queue_attributes(QueueUrl=outputs["WorkDLQUrl"], AttributeNames=["QueueArn"])
    # And its work queue, its functions and its schedules are gone with it
    with pytest.raises(sqs.exceptions.ClientError):
        sqs.get_queue_attributes(QueueUrl=outputs["WorkQueueUrl"], AttributeNames=["QueueArn"])
    groups = second.client("scheduler").list_schedule_groups()["ScheduleGroups"]
    assert outputs["ScheduleGroupName"] not in {g["Name"] for g in groups}
