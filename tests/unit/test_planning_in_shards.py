"""Planning in shards: past ``plan_shard_clients``, a run is planned a range of clients per
invocation, each shard started by the one before. Every client is planned once, whatever
order the shards finish in; the run is running only once every shard is planned, with the
totals of all of them; a repeated or retried shard plans nothing twice, and reads the range
its first attempt fixed."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobkit.domain.errors import PermanentError, ShardBusyError
from jobkit.pipeline.plan_request import PlanRequest, parse_plan_request
from jobkit.pipeline.shard_range import ShardRequest
from jobkit.runs.models import ClientStatus, RunStatus
from jobkit.runs.shards import RunShards, shard_key
from tests.unit.pipeline import JOB, Pipeline

SHARD = 3
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _seed(pipeline: Pipeline, ids: list[str]) -> None:
    for client_id in ids:
        pipeline.seed(client_id, count=2)


def _page_clients(pipeline: Pipeline) -> list[str]:
    """The clients of every page item on the live lane, left there."""
    received: list[dict[str, Any]] = []
    while messages := pipeline.receive(max_messages=10):
        received += messages
    pipeline.release(received)
    return sorted(json.loads(str(m["Body"]))["client_id"] for m in received)


class FailingLaunch:
    """Starts a run's next shard as the pipeline does, but raises ``error`` while
    ``failing``: the invocation that would start it fails there."""

    def __init__(self, pipeline: Pipeline, error: Exception, failing: bool) -> None:
        self._pipeline = pipeline
        self._error = error
        self.failing = failing

    def __call__(self, shard: ShardRequest) -> None:
        if self.failing:
            raise self._error
        self._pipeline.launched_shards.append(shard)


def test_a_run_past_the_shard_size_plans_every_client_once_and_closes_with_all_totals(
    pipeline: Pipeline,
) -> None:
    # Given nine clients, one disabled and one invalid among them, planned three at a time
    ids = [f"c{n}" for n in range(9)]
    _seed(pipeline, [i for i in ids if i not in ("c4", "c7")])
    pipeline.seed("c4", count=2, enabled=False)
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={"job_type": JOB, "client_id": "c7", "group_id": "north", "days": "often"}
    )
    pipeline.planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    # When the run is planned (its shards in turn) and processed
    run = pipeline.plan(trigger="cli")
    # Then three shards planned it, and it is running with every shard's clients
    assert run.status is RunStatus.RUNNING
    assert (run.clients, run.clients_failed) == (8, 1)
    assert len(pipeline.ledger.shards.rows(run.run_id)) == 3
    assert _page_clients(pipeline) == [i for i in ids if i not in ("c4", "c7")]
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert view.header.processed == 14
    rows = {c.client_id: c for c in view.clients}
    assert sorted(rows) == [i for i in ids if i != "c4"]
    assert rows["c7"].status is ClientStatus.INVALID_CONFIG
    [issue] = view.header.issues
    assert issue.startswith("client c7: invalid configuration")


def test_shards_finishing_in_reverse_order_mark_the_run_running_once_at_the_last(
    pipeline: Pipeline,
) -> None:
    # Given seven clients, and each shard planned inside the one that started it (so the
    # last shard finishes first, and the first shard last)
    _seed(pipeline, [f"c{n}" for n in range(7)])
    statuses: list[RunStatus] = []

    def plan_at_once(shard: ShardRequest) -> None:
        planner.plan_shard(shard)
        header = pipeline.ledger.lifecycle.header(shard.run_id)
        assert header is not None
        statuses.append(header.status)

    planner = pipeline.planner_for(JOB, shard_clients=SHARD, launch_shard=plan_at_once)
    # When the run is planned
    run = planner.plan(PlanRequest(trigger="cli"))
    # Then it was still planning as the later shards finished, and the first one marked it
    # running with everyone's clients
    assert statuses == [RunStatus.PLANNING, RunStatus.PLANNING]
    assert (run.status, run.clients) == (RunStatus.RUNNING, 7)
    pipeline.drain()
    assert pipeline.view(run.run_id).header.status is RunStatus.SUCCEEDED


def test_a_shard_invoked_twice_plans_nothing_twice(pipeline: Pipeline) -> None:
    # Given a run of seven clients in three shards, and each shard's invocation delivered
    # twice (Lambda's asynchronous invocations are at least once)
    _seed(pipeline, [f"c{n}" for n in range(7)])
    planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    header = planner.plan(PlanRequest(trigger="cli"))
    [second] = pipeline.launched_shards
    planner.plan_shard(second)
    planner.plan_shard(second)
    # (each attempt of shard 1 started shard 2: the second found it not started yet)
    assert [s.shard for s in pipeline.launched_shards] == [1, 2, 2]
    # When the duplicates arrive, the last one after the run is running
    planner.plan_shard(pipeline.launched_shards[1])
    planner.plan_shard(pipeline.launched_shards[2])
    # Then the repeated page items (a resumed shard sends its clients' again, as a resumed
    # planner does) are done once: the run counts each client and record once
    assert sorted(set(_page_clients(pipeline))) == [f"c{n}" for n in range(7)]
    pipeline.drain()
    view = pipeline.view(header.run_id)
    assert (view.header.status, view.header.clients) == (RunStatus.SUCCEEDED, 7)
    assert (view.header.received, view.header.processed) == (14, 14)
    assert len(view.clients) == 7


def test_a_shard_retried_after_a_crash_reads_the_range_its_first_attempt_fixed(
    pipeline: Pipeline,
) -> None:
    # Given nine clients in shards of three, and shard 1 crashing as it starts shard 2
    _seed(pipeline, [f"c{n}" for n in range(9)])
    launch = FailingLaunch(pipeline, ConnectionError("Lambda unreachable"), failing=False)
    planner = pipeline.planner_for(JOB, shard_clients=SHARD, launch_shard=launch)
    header = planner.plan(PlanRequest(trigger="cli"))
    [second] = pipeline.launched_shards
    launch.failing = True
    with pytest.raises(ConnectionError):
        planner.plan_shard(second)
    # When a client is configured inside its range meanwhile, and the shard is retried
    pipeline.seed("c45", count=2)
    launch.failing = False
    planner.plan_shard(second)
    while len(pipeline.launched_shards) > 1:
        planner.plan_shard(pipeline.launched_shards.pop())
    # Then the retry kept its range (c3 to c5, the new client with them), the next shard
    # started from it, and every client was planned once
    shards = pipeline.ledger.shards.rows(header.run_id)
    assert [(s.start_after, s.end_after) for s in shards] == [
        (None, "c2"),
        ("c2", "c5"),
        ("c5", None),
    ]
    assert shards[1].planned == 4
    assert _page_clients(pipeline) == sorted([f"c{n}" for n in range(9)] + ["c45"])
    pipeline.drain()
    view = pipeline.view(header.run_id)
    assert (view.header.status, view.header.clients) == (RunStatus.SUCCEEDED, 10)


def test_a_cancelled_run_plans_no_further_shard(pipeline: Pipeline) -> None:
    # Given a run whose first shard is planned, then cancelled
    _seed(pipeline, [f"c{n}" for n in range(5)])
    planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    header = planner.plan(PlanRequest(trigger="cli"))
    assert pipeline.ledger.lifecycle.cancel(header.run_id)
    # When its next shard arrives
    planner.plan_shard(pipeline.launched_shards.pop())
    # Then it plans nothing: three page items, from the first shard only
    assert len(_page_clients(pipeline)) == 3
    items = pipeline.ledger.shards.rows(header.run_id)
    assert [row.finished_at is not None for row in items] == [True, False]


def test_a_run_that_names_its_clients_reads_only_their_rows_in_one_shard(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given six clients, shards of two, and a run naming four of them and one unknown
    _seed(pipeline, [f"c{n}" for n in range(6)])
    pipeline.planner = pipeline.planner_for(JOB, shard_clients=2)

    def no_range_read(*args: object) -> None:
        raise AssertionError("a named run reads the job's whole config partition")

    monkeypatch.setattr(pipeline.configs, "client_range", no_range_read)
    # When it is planned
    run = pipeline.plan(trigger="cli", client_ids=["c1", "c2", "c4", "c5", "nobody"])
    # Then the named rows were read by key, in one shard, and the unknown one is reported
    assert (run.status, run.clients) == (RunStatus.RUNNING, 4)
    assert run.issues == [f"client nobody: not configured for {JOB}"]
    assert len(pipeline.ledger.shards.rows(run.run_id)) == 1


def test_the_config_range_reads_between_its_bounds_and_says_where_a_limit_stopped(
    pipeline: Pipeline,
) -> None:
    _seed(pipeline, [f"c{n}" for n in range(6)])

    def ids(after: str | None, through: str | None, limit: int | None) -> Any:
        configs, end = pipeline.configs.client_range(JOB, after, through, limit)
        return [c.client_id for c in configs], end

    assert ids(None, None, None) == ([f"c{n}" for n in range(6)], None)
    assert ids(None, None, 2) == (["c0", "c1"], "c1")
    assert ids("c3", None, 2) == (["c4", "c5"], None)  # the range ends at the limit
    assert ids("c1", "c4", None) == (["c2", "c3", "c4"], None)
    assert ids("c1", None, 10) == (["c2", "c3", "c4", "c5"], None)
    assert ids(None, "c2", None) == (["c0", "c1", "c2"], None)
    assert ids("c5", None, 3) == ([], None)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"run_id": "r1", "shard": 0}, "shard"),
        ({"run_id": "r 1", "shard": 1}, "run_id"),
        ({"run_id": "r1", "shard": 1, "trigger": "cli"}, "trigger"),
    ],
)
def test_a_bad_shard_event_is_refused_naming_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(Exception, match=field) as raised:
        parse_plan_request(event)
    assert "invalid planner event" in str(raised.value)


def test_a_repeated_fire_starts_a_shard_whose_invocation_was_lost(pipeline: Pipeline) -> None:
    # Given a scheduled run whose second shard's invocation was lost (it failed every
    # attempt: Lambda put it in the functions' dead-letter queue)
    _seed(pipeline, [f"c{n}" for n in range(5)])
    planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    fired = PlanRequest(trigger="schedule", scheduled_time=T0)
    header = planner.plan(fired)
    pipeline.launched_shards.clear()
    assert header.status is RunStatus.PLANNING
    # When the schedule's fire is delivered again
    planner.plan(fired)
    # Then it plans nothing of the first shard again, starts the lost one, and that one
    # marks the run running with every client
    [lost] = pipeline.launched_shards
    assert len(_page_clients(pipeline)) == 3
    planner.plan_shard(lost)
    run = pipeline.ledger.lifecycle.header(header.run_id)
    assert run is not None and (run.status, run.clients) == (RunStatus.RUNNING, 5)


def test_a_shard_no_shard_handed_off_is_refused(pipeline: Pipeline) -> None:
    _seed(pipeline, [f"c{n}" for n in range(5)])
    planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    header = planner.plan(PlanRequest(trigger="cli"))
    with pytest.raises(PermanentError, match="shard 4 of run .* was never handed off"):
        planner.plan_shard(ShardRequest(run_id=header.run_id, shard=4))


def _closed_exactly(pipeline: Pipeline, run_id: str, clients: int) -> None:
    """The run closed with every client and record counted once (two records a client)."""
    pipeline.drain()
    view = pipeline.view(run_id)
    assert (view.header.status, view.header.clients) == (RunStatus.SUCCEEDED, clients)
    assert (view.header.received, view.header.processed) == (2 * clients, 2 * clients)
    assert [c.status for c in view.clients] == [ClientStatus.DONE] * clients


def test_a_second_attempt_while_the_first_plans_the_shard_waits_for_it_to_end(
    pipeline: Pipeline,
) -> None:
    # Given a run asked for once and delivered twice, the second delivery arriving while the
    # first attempt plans shard 0 (it has read its range, and writes its client rows next),
    # and whatever the second one enqueued processed at once
    _seed(pipeline, [f"c{n}" for n in range(5)])
    request = PlanRequest(trigger="api", run_id=f"{JOB}.delivered-twice")
    refusals: list[str] = []

    def second_delivery_meanwhile(shard: ShardRequest) -> None:
        pipeline.launched_shards.append(shard)
        if len(pipeline.launched_shards) == 1:
            try:
                planner.plan(request)
            except ShardBusyError as exc:
                refusals.append(str(exc))
            pipeline.drain()

    planner = pipeline.planner_for(JOB, shard_clients=SHARD, launch_shard=second_delivery_meanwhile)
    # When both attempts have run, and the second one's retry comes after the first ended
    pipeline.plan_request(request, planner)
    planner.plan(request)
    # Then the second attempt was refused with a retryable error, planned nothing, and the
    # run counts each client and record once (had it planned, the first attempt's rows
    # would have reset the counts of the clients it had already processed)
    [refusal] = refusals
    assert refusal.startswith(
        f"shard 0 of run '{JOB}.delivered-twice' is being planned by another attempt"
    )
    assert refusal.endswith("retried once that one has ended")
    _closed_exactly(pipeline, request.run_id or "", 5)


def test_an_attempt_lambda_stopped_holds_its_shard_until_its_deadline(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shard whose attempt Lambda stopped at its timeout as it started the next one
    # (nothing of it runs after that: it cannot let go of its shard)
    _seed(pipeline, [f"c{n}" for n in range(5)])
    request = PlanRequest(trigger="api", run_id=f"{JOB}.timed-out")
    launch = FailingLaunch(pipeline, TimeoutError("Task timed out after 120 s"), failing=True)
    planner = pipeline.planner_for(JOB, shard_clients=SHARD, launch_shard=launch)
    with monkeypatch.context() as killed:
        killed.setattr(RunShards, "release", lambda *args: None)
        with pytest.raises(TimeoutError):
            planner.plan(request, ends_by=datetime.now(UTC) + timedelta(minutes=2))
    # When it is retried before that invocation's deadline, and again after it
    launch.failing = False
    with pytest.raises(ShardBusyError):
        planner.plan(request)
    pipeline.aws.tables["RunsTable"].update_item(
        Key=shard_key(request.run_id or "", 0),
        UpdateExpression="SET lease_until = :past",  # the deadline and its margin passed
        ExpressionAttributeValues={":past": int(datetime.now(UTC).timestamp()) - 1},
    )
    header = pipeline.plan_request(request, planner)
    # Then the retry after the deadline took the shard over and resumed it, and the run
    # counts each client once
    [first] = pipeline.ledger.shards.rows(header.run_id)[:1]
    assert first.attempts == 2  # the refused retry never held it
    _closed_exactly(pipeline, header.run_id, 5)


def test_an_attempt_that_fails_lets_go_of_its_shard_at_once(pipeline: Pipeline) -> None:
    # Given a shard whose attempt failed (an error it raised, not a timeout)
    _seed(pipeline, [f"c{n}" for n in range(5)])
    request = PlanRequest(trigger="api", run_id=f"{JOB}.failed-once")
    launch = FailingLaunch(pipeline, ConnectionError("Lambda unreachable"), failing=True)
    planner = pipeline.planner_for(JOB, shard_clients=SHARD, launch_shard=launch)
    with pytest.raises(ConnectionError):
        planner.plan(request)
    # When Lambda retries it at once
    launch.failing = False
    header = pipeline.plan_request(request, planner)
    # Then the retry was not refused: it resumed the shard, and the run counts each client once
    assert header.status is RunStatus.RUNNING
    _closed_exactly(pipeline, header.run_id, 5)


def _opened_minutes_ago(pipeline: Pipeline, run_id: str, minutes: int) -> None:
    """Time passes: the run was opened ``minutes`` ago."""
    at = datetime.now(UTC) - timedelta(minutes=minutes)
    pipeline.aws.tables["RunsTable"].update_item(
        Key={"run_id": run_id, "sk": "RUN"},
        UpdateExpression="SET created_at = :at",
        ExpressionAttributeValues={":at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )


def test_a_run_a_lost_shard_left_planning_is_counted_stuck_until_it_is_fired_again(
    pipeline: Pipeline,
) -> None:
    # Given a run whose second shard's invocation was lost, and a run that planned whole
    _seed(pipeline, [f"c{n}" for n in range(5)])
    planner = pipeline.planner_for(JOB, shard_clients=SHARD)
    request = PlanRequest(trigger="api", run_id=f"{JOB}.lost-a-shard")
    planner.plan(request)
    pipeline.launched_shards.clear()
    planned = pipeline.plan_request(PlanRequest(trigger="cli"), planner)
    # When the next fires count the job's runs stuck planning: ten minutes after they
    # opened, then twenty-five
    for run_id in (request.run_id or "", planned.run_id):
        _opened_minutes_ago(pipeline, run_id, 10)
    soon = planner.stuck_planning_count()
    for run_id in (request.run_id or "", planned.run_id):
        _opened_minutes_ago(pipeline, run_id, 25)
    late = planner.stuck_planning_count()
    # Then only the run left planning counts, once it is past 20 minutes, and no longer once
    # it is fired again (which starts the lost shard)
    assert (soon, late) == (0, 1)
    planner.plan(request)
    planner.plan_shard(pipeline.launched_shards.pop())
    assert planner.stuck_planning_count() == 0
