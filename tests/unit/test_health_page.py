"""The job-health page and a run's body stay small with many clients: a page of them, those
needing attention first, their recent results read by key, and the open run's totals
without its client rows."""

from typing import Any

import pytest

from jobkit.api import models as api_models
from jobkit.api.models import run_out
from jobkit.api.visibility import EveryClient
from jobkit.ops.health_page import ClientsShown, HealthOut, JobHealthOut, build_health
from jobkit.runs.models import RunStatus
from jobkit.tooling.permissions import permissions_needed
from tests.unit.pipeline import JOB, Pipeline


def _health(pipeline: Pipeline, client_prefix: str = "", **options: Any) -> JobHealthOut:
    runs = EveryClient(pipeline.ledger.queries)
    shown = ClientsShown(prefix=client_prefix)
    report: HealthOut = build_health(
        {JOB: "rate(1 hour)"}, pipeline.configs, runs, 0, shown=shown, **options
    )
    [job] = report.jobs
    return job


def _seed_quietly(pipeline: Pipeline, *client_ids: str) -> None:
    for client_id in client_ids:
        pipeline.seed(client_id, count=1)


def test_clients_needing_attention_come_first_within_the_limit(pipeline: Pipeline) -> None:
    # Given ten healthy clients, two failing, and one with a broken config row, after a run
    # (the broken row fails it: an invalid configuration starts a streak too)
    _seed_quietly(pipeline, *(f"ok-{n:02d}" for n in range(10)), "slipping", "failing")
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={"job_type": JOB, "client_id": "broken", "group_id": "not a valid id!"}
    )
    pipeline.plan(trigger="cli")
    pipeline.drain()
    for _ in range(3):
        pipeline.configs.record_result(JOB, "failing", failed=True)
    for _ in range(2):
        pipeline.configs.record_result(JOB, "slipping", failed=True)
    # When the page lists four clients
    job = _health(pipeline, limit=4)
    # Then the longest streaks come first, then the rest by id
    assert [c.client_id for c in job.clients] == ["failing", "slipping", "broken", "ok-00"]
    assert [c.streak for c in job.clients] == [3, 2, 1, 0]
    assert "group_id" in (job.clients[2].problem or "")
    # And the totals count every client, not just the listed ones
    assert (job.clients_total, job.clients_needing_attention) == (13, 3)


def test_a_client_that_recovers_no_longer_needs_attention(pipeline: Pipeline) -> None:
    _seed_quietly(pipeline, "acme", "globex")
    pipeline.configs.record_result(JOB, "acme", failed=True)
    assert _health(pipeline).clients_needing_attention == 1
    pipeline.configs.record_result(JOB, "acme", failed=False)
    job = _health(pipeline)
    assert job.clients_needing_attention == 0
    assert [(c.client_id, c.streak) for c in job.clients] == [("acme", 0), ("globex", 0)]


def test_the_page_fetches_the_rows_it_lists_not_every_client(pipeline: Pipeline) -> None:
    # Given forty clients, one of them failing
    _seed_quietly(pipeline, *(f"c-{n:02d}" for n in range(40)))
    pipeline.configs.record_result(JOB, "c-33", failed=True)
    rows_returned: list[int] = []

    def count(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        found = parsed.get("Items", []) + sum(parsed.get("Responses", {}).values(), [])
        rows_returned.append(len(found) + ("Item" in parsed))

    events = pipeline.aws.tables["ConfigTable"].meta.client.meta.events
    events.register("after-call.dynamodb", count)
    try:
        # When the page lists five of them
        job = _health(pipeline, limit=5)
    finally:
        events.unregister("after-call.dynamodb", count)
    # Then it shows the failing one first and counts all forty, having fetched about a page
    # of rows, not forty: DynamoDB counted them
    assert [c.client_id for c in job.clients] == ["c-33", "c-00", "c-01", "c-02", "c-03"]
    assert (job.clients_total, job.clients_needing_attention) == (40, 1)
    assert sum(rows_returned) <= 2 * 5


def test_a_client_prefix_finds_any_client_and_the_totals_follow_it(pipeline: Pipeline) -> None:
    _seed_quietly(pipeline, *(f"north-{n}" for n in range(5)), "south-1", "south-2")
    job = _health(pipeline, limit=1, client_prefix="south-")
    assert [c.client_id for c in job.clients] == ["south-1"]
    assert (job.clients_total, job.clients_needing_attention) == (2, 0)


def test_listed_clients_show_their_recent_runs_newest_first(pipeline: Pipeline) -> None:
    # Given two runs of one client, the first of them failing
    pipeline.seed("acme", count=2)
    pipeline.failing_run()
    pipeline.plan(trigger="cli")
    pipeline.drain()
    # When the page is built
    job = _health(pipeline)
    # Then the client's results are its own rows of those runs, newest first
    [acme] = job.clients
    assert acme.recent == ["SUCCEEDED", "FAILED"]
    assert acme.ratio == 100.0
    assert job.recent_runs == ["SUCCEEDED", "FAILED"]
    assert job.health == "healthy" and job.open_run is None


def test_an_open_run_shows_live_totals_without_its_client_rows(pipeline: Pipeline) -> None:
    # Given a run whose pages were fetched but whose records are still queued
    pipeline.seed("acme", count=4)
    pipeline.seed("globex", count=3)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())
    # When the page is built
    job = _health(pipeline)
    # Then the open run's counts are live, summed over its clients, and carry no client rows
    assert job.open_run is not None and job.open_run.run_id == run.run_id
    assert (job.open_run.counts.received, job.open_run.counts.processed) == (7, 0)
    assert job.open_run.clients == []
    assert {c.client_id: (c.recent, c.ratio) for c in job.clients} == {
        "acme": (["RUNNING"], None),  # no ratio while a client's records are still queued
        "globex": (["RUNNING"], None),
    }


def test_an_open_run_of_many_clients_shows_the_totals_rolled_up_so_far(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run with more clients than the page sums live (lowered to 1 here)
    monkeypatch.setattr(api_models, "LIVE_CLIENT_ROWS", 1)
    pipeline.seed("acme", count=4)
    pipeline.seed("globex", count=3)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())
    # When the page is built
    job = _health(pipeline)
    # Then it does not read the run's client rows: its counts are the header's, which no
    # client has rolled up into yet
    assert job.open_run is not None
    assert (job.open_run.counts.clients, job.open_run.counts.received) == (2, 0)


def test_a_run_of_many_clients_is_read_within_bounds(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run of three clients, with the live limit lowered to one
    monkeypatch.setattr(api_models, "LIVE_CLIENT_ROWS", 1)
    for client_id in ("c", "a", "b"):
        pipeline.seed(client_id, count=2)
    header = pipeline.plan(trigger="cli")
    pipeline.drain()
    finished = pipeline.ledger.queries.header(header.run_id)
    assert finished is not None and finished.status is RunStatus.SUCCEEDED
    # When the API shows it with at most two client rows
    run = run_out(pipeline.ledger.queries, finished, client_rows=2)
    # Then the counts are the header's totals and the rows the first two by client id
    assert (run.counts.clients, run.counts.received, run.counts.processed) == (3, 6, 6)
    assert [c.client_id for c in run.clients] == ["a", "b"]


def test_a_run_still_planning_is_shown_from_its_header(pipeline: Pipeline) -> None:
    # Given a run whose planner is still writing its client rows
    pipeline.seed("acme", count=2)
    pipeline.seed("globex", count=2)
    header = pipeline.plan(trigger="cli")
    planning = header.model_copy(update={"status": RunStatus.PLANNING, "clients": 0})
    # Then its client rows are not all read to sum counts it does not have yet: one page
    run = run_out(pipeline.ledger.queries, planning, client_rows=1)
    assert (run.status, run.counts.received) == ("PLANNING", 0)
    assert [c.client_id for c in run.clients] == ["acme"]


def _allowed_dynamodb_actions(function: str) -> dict[str, set[str]]:
    """The DynamoDB actions the template grants ``function``, by resource: a table's logical
    id, or ``<table logical id>/index/<name>``."""
    from tests.support import template

    allowed: dict[str, set[str]] = {}
    for policy in template()["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            actions = statement["Action"]
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                # !GetAtt <Table>.Arn, or !Sub "${<Table>.Arn}/index/<name>"
                name = resource.replace("${", "").replace(".Arn}", "").removesuffix(".Arn")
                allowed.setdefault(name, set()).update(
                    actions if isinstance(actions, list) else [actions]
                )
    return allowed


def test_the_api_function_may_make_every_request_the_health_page_makes(pipeline: Pipeline) -> None:
    # Given a finished run and an open one, and a failing client, so every read happens
    pipeline.seed("acme", count=2)
    pipeline.plan(trigger="cli")
    pipeline.drain()
    pipeline.plan(trigger="cli")
    pipeline.configs.record_result(JOB, "acme", failed=True)
    tables = {table.name: logical_id for logical_id, table in pipeline.aws.tables.items()}
    made: set[tuple[str, str]] = set()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        for needed in permissions_needed("dynamodb", model.name, params):
            name, _separator, index = needed.name.partition("/index/")
            made.add((tables[name] + (f"/index/{index}" if index else ""), needed.action))

    events = pipeline.aws.tables["RunsTable"].meta.client.meta.events
    events.register("before-parameter-build.dynamodb", record)
    _health(pipeline)
    events.unregister("before-parameter-build.dynamodb", record)
    # Then the API function's policy allows each of them (MiniStack does not enforce IAM;
    # the integration tier asks IAM's simulator about every function's requests)
    allowed = _allowed_dynamodb_actions("ApiFunction")
    assert ("RunsTable", "dynamodb:BatchGetItem") in made
    assert ("ConfigTable/index/by-streak", "dynamodb:Query") in made
    assert sorted(m for m in made if m[1] not in allowed.get(m[0], set())) == []
