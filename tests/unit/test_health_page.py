"""The job-health page and a run's body stay small with many clients: a page of them, those
needing attention first, their recent results read by key, and the open run's totals
without its client rows."""

from typing import Any

import pytest

from jobkit import health_page
from jobkit.api_models import RUN_CLIENT_ROWS, RunOut
from jobkit.health_page import HealthOut, JobHealthOut, build_health
from jobkit.runs import ClientRun, ClientStatus, RunView
from tests.unit.pipeline import JOB


def _health(pipeline: Any, **options: Any) -> JobHealthOut:
    report: HealthOut = build_health(
        {JOB: "rate(1 hour)"}, pipeline.configs, pipeline.runs, 0, **options
    )
    [job] = report.jobs
    return job


def _seed_quietly(pipeline: Any, *client_ids: str) -> None:
    for client_id in client_ids:
        pipeline.seed(client_id, count=1)


def test_clients_needing_attention_come_first_within_the_limit(pipeline: Any) -> None:
    # Given ten healthy clients, two with failure streaks and one with a broken config row
    _seed_quietly(pipeline, *(f"ok-{n:02d}" for n in range(10)), "slipping", "failing")
    for _ in range(3):
        pipeline.configs.record_result(JOB, "failing", failed=True)
    pipeline.configs.record_result(JOB, "slipping", failed=True)
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={"job_type": JOB, "client_id": "broken", "group_id": "not a valid id!"}
    )
    # When the page lists four clients
    job = _health(pipeline, limit=4)
    # Then the broken one comes first, then the longest streaks, then the rest by id
    assert [c.client_id for c in job.clients] == ["broken", "failing", "slipping", "ok-00"]
    assert "group_id" in (job.clients[0].problem or "")
    assert [c.streak for c in job.clients[1:]] == [3, 1, 0]
    # And the totals count every client, not just the listed ones
    assert (job.clients_total, job.clients_needing_attention) == (13, 3)


def test_a_client_prefix_finds_any_client_and_the_totals_follow_it(pipeline: Any) -> None:
    _seed_quietly(pipeline, *(f"north-{n}" for n in range(5)), "south-1", "south-2")
    job = _health(pipeline, limit=1, client_prefix="south-")
    assert [c.client_id for c in job.clients] == ["south-1"]
    assert (job.clients_total, job.clients_needing_attention) == (2, 0)


def test_listed_clients_show_their_recent_runs_newest_first(pipeline: Any) -> None:
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


def test_an_open_run_shows_live_totals_without_its_client_rows(pipeline: Any) -> None:
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
    pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run with more clients than the page sums live (lowered to 1 here)
    monkeypatch.setattr(health_page, "LIVE_CLIENT_ROWS", 1)
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


def test_a_run_of_many_clients_carries_its_troubled_clients_first_and_every_count(
    pipeline: Any,
) -> None:
    header = pipeline.plan(trigger="cli")  # no clients configured: only a header is needed
    rows = [
        ClientRun(client_id=f"c{n:05d}", status=ClientStatus.DONE, received=2, processed=2)
        for n in range(RUN_CLIENT_ROWS + 500)
    ]
    rows[700] = ClientRun(client_id="c00700", status=ClientStatus.DONE, received=2, failed=2)
    rows[1400] = ClientRun(client_id="c01400", status=ClientStatus.RUNNING, received=2)
    run = RunOut.of(RunView(header=header, clients=rows))
    assert len(run.clients) == RUN_CLIENT_ROWS
    assert [c.client_id for c in run.clients[:3]] == ["c00700", "c01400", "c00000"]
    # The counts are every client's, listed or not
    assert (run.counts.received, run.counts.processed, run.counts.failed) == (3000, 2996, 2)
