"""Per-client cadence: a scheduled fire plans a client only when its frequency has passed since
the fire that last planned it, decided by the fires' scheduled times; a run asked for by hand
plans every client it names. And every query field a row sets is one its job uses."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from jobkit.adapters.config import ClientConfig
from jobkit.pipeline.selection import is_due
from jobkit.runs.models import ClientStatus, RunHeader
from jobs.sync_completed_records import DEFAULT_DAYS, records_query
from tests.unit.pipeline import JOB, Pipeline

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
CONTACTS = "sync-contacts"


def _config(frequency: int, last: datetime | None) -> ClientConfig:
    return ClientConfig(
        job_type=JOB,
        client_id="acme",
        group_id="north",
        frequency_minutes=frequency,
        last_scheduled_at=last,
    )


@pytest.mark.parametrize(
    ("frequency", "since_last", "due"),
    [
        (30, None, True),  # never planned by a schedule
        (30, timedelta(0), True),  # this very fire planned it (delivered twice, resumed)
        (30, timedelta(minutes=30), True),
        (30, timedelta(minutes=29), True),  # a fire dated a minute early still plans it
        (30, timedelta(minutes=28, seconds=59), False),
        (30, timedelta(minutes=15), False),
        (30, timedelta(minutes=-30), False),  # a later fire planned it: this one is late
        (1440, timedelta(minutes=30), False),
        (1440, timedelta(hours=23, minutes=59), True),
        (1440, timedelta(hours=23, minutes=58), False),
        (1, timedelta(seconds=30), True),  # the jitter is at most half the frequency
        (1, timedelta(seconds=29), False),
    ],
)
def test_due_at_its_boundaries(frequency: int, since_last: timedelta | None, due: bool) -> None:
    last = None if since_last is None else T0 - since_last
    assert is_due(_config(frequency, last), T0) is due


@pytest.mark.parametrize("frequency", [0, -30, 10081, "often", 1.5])
def test_a_frequency_out_of_bounds_is_refused_with_the_field_named(frequency: Any) -> None:
    with pytest.raises(ValidationError, match="frequency_minutes"):
        ClientConfig(job_type=JOB, client_id="acme", group_id="north", frequency_minutes=frequency)


def _fire(pipeline: Pipeline, at: datetime) -> RunHeader:
    header = pipeline.plan(trigger="schedule", scheduled_time=at)
    pipeline.drain()
    return header


def _planned(pipeline: Pipeline, header: RunHeader) -> list[str]:
    return sorted(c.client_id for c in pipeline.view(header.run_id).clients)


def test_each_client_is_planned_at_its_own_frequency(pipeline: Pipeline) -> None:
    # Given a half-hourly and a daily client of a job scheduled every half hour
    pipeline.seed("half-hourly", count=2, frequency_minutes=30)
    pipeline.seed("daily", count=2, frequency_minutes=1440)
    # When three fires come 30 minutes apart (in scheduled time)
    fires = [_fire(pipeline, T0 + timedelta(minutes=30 * n)) for n in range(3)]
    # Then the first is planned by each, the second only by the first
    assert [_planned(pipeline, f) for f in fires] == [
        ["daily", "half-hourly"],
        ["half-hourly"],
        ["half-hourly"],
    ]
    # And each run says how many it left for later
    assert [pipeline.view(f.run_id).header.not_due for f in fires] == [0, 1, 1]
    # And a run asked for by hand plans both, whatever their frequency
    manual = pipeline.plan(trigger="api")
    pipeline.drain()
    assert (_planned(pipeline, manual), manual.not_due) == (["daily", "half-hourly"], 0)
    # And a manual run is not a scheduled planning: the daily client waits its day still
    later = _fire(pipeline, T0 + timedelta(minutes=90))
    assert _planned(pipeline, later) == ["half-hourly"]
    assert _planned(pipeline, _fire(pipeline, T0 + timedelta(days=1))) == [
        "daily",
        "half-hourly",
    ]


def test_a_client_added_mid_cycle_is_planned_at_the_next_fire(pipeline: Pipeline) -> None:
    pipeline.seed("daily", count=1, frequency_minutes=1440)
    _fire(pipeline, T0)
    pipeline.seed("newcomer", count=1, frequency_minutes=1440)
    assert _planned(pipeline, _fire(pipeline, T0 + timedelta(minutes=30))) == ["newcomer"]


def test_a_frequency_changed_between_fires_counts_from_the_last_planning(
    pipeline: Pipeline,
) -> None:
    # Given a daily client planned at T0
    pipeline.seed("acme", count=1, frequency_minutes=1440)
    _fire(pipeline, T0)
    # When it becomes hourly: not due 30 minutes later, due an hour after T0
    pipeline.configs.put(
        pipeline.configs.get(JOB, "acme").model_copy(update={"frequency_minutes": 60})
    )
    assert _planned(pipeline, _fire(pipeline, T0 + timedelta(minutes=30))) == []
    assert _planned(pipeline, _fire(pipeline, T0 + timedelta(minutes=60))) == ["acme"]


def test_a_fire_delivered_twice_decides_the_same_way(pipeline: Pipeline) -> None:
    pipeline.seed("half-hourly", count=1, frequency_minutes=30)
    pipeline.seed("daily", count=1, frequency_minutes=1440)
    _fire(pipeline, T0)
    first = _fire(pipeline, T0 + timedelta(minutes=30))
    again = _fire(pipeline, T0 + timedelta(minutes=30))
    assert again.run_id == first.run_id
    assert _planned(pipeline, again) == ["half-hourly"]
    assert pipeline.view(again.run_id).header.not_due == 1


def test_a_fire_with_no_client_due_finishes_with_nothing_to_do(pipeline: Pipeline) -> None:
    pipeline.seed("daily", count=1, frequency_minutes=1440)
    _fire(pipeline, T0)
    header = pipeline.view(_fire(pipeline, T0 + timedelta(minutes=30)).run_id).header
    assert (header.status.value, header.clients, header.not_due) == ("SUCCEEDED", 0, 1)
    assert not any("no enabled clients" in issue for issue in header.issues)


def test_a_row_setting_a_field_its_job_does_not_use_is_refused_by_the_planner(
    pipeline: Pipeline,
) -> None:
    # Given two sync-contacts clients, one of whose rows sets days (a field that job ignores)
    planner = pipeline.planner_for(CONTACTS)
    for client_id, extra in (("clean", {}), ("looks-back", {"days": 3})):
        pipeline.external.add_client(client_id, "north", 0)
        pipeline.configs.put(
            ClientConfig(job_type=CONTACTS, client_id=client_id, group_id="north", **extra)
        )
    # When a run is planned
    header = planner.plan(pipeline_request())
    # Then the row is reported, naming the field, and the other client runs
    view = pipeline.view(header.run_id)
    rows = {row.client_id: row for row in view.clients}
    assert rows["looks-back"].status is ClientStatus.INVALID_CONFIG
    assert "days: not used by job type sync-contacts" in (rows["looks-back"].error or "")
    assert rows["clean"].status is not ClientStatus.INVALID_CONFIG
    assert any("looks-back" in issue and "days" in issue for issue in view.header.issues)


def pipeline_request() -> Any:
    from jobkit.pipeline.plan_request import PlanRequest

    return PlanRequest(trigger="cli")


def test_the_records_query_carries_days_year_and_script_from_the_runs_time() -> None:
    from jobkit.domain.job import PageRequest

    client = ClientConfig(
        job_type=JOB, client_id="acme", group_id="north", days=3, year=2026, script="GET_X"
    )
    query = records_query(client, PageRequest(cursor="c1", as_of=T0))
    assert query["completed_after"] == (T0 - timedelta(days=3)).isoformat()
    assert (query["year"], query["script"], query["cursor"]) == (2026, "GET_X", "c1")
    # Unset, the job's defaults: the seed's seven days and its completed-records query
    defaults = records_query(
        ClientConfig(job_type=JOB, client_id="a", group_id="n"), PageRequest(None, T0)
    )
    assert defaults["completed_after"] == (T0 - timedelta(days=DEFAULT_DAYS)).isoformat()
    assert (defaults["script"], "year" in defaults, "cursor" in defaults) == (
        "GET_COMPLETED",
        False,
        False,
    )


def test_every_page_of_a_scheduled_run_queries_from_the_fires_time(pipeline: Pipeline) -> None:
    pipeline.external.page_size = 2
    pipeline.seed("acme", count=5, days=2)
    _fire(pipeline, T0)
    since = (T0 - timedelta(days=2)).isoformat()
    assert [q["completed_after"] for q in pipeline.external.queries] == [since] * 3


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["sync-contacts", "acme", "--group", "north", "--days", "3"], "days: not used by job"),
        (["sync-completed-records", "acme", "--group", "north", "--frequency", "0"], "frequency"),
        (["no-such-job", "acme", "--group", "north"], "unknown job type 'no-such-job'"),
    ],
)
def test_the_cli_refuses_a_client_before_it_writes(arguments: list[str], refusal: str) -> None:
    from typer.testing import CliRunner

    from jobkit_cli.main import app

    result = CliRunner().invoke(app, ["clients", "add", *arguments])
    assert result.exit_code == 2, result.output
    assert refusal in " ".join(result.output.split())


@pytest.mark.parametrize("metric", ["ClientsStale", "RunsStuckPlanning"])
def test_every_job_in_the_template_alarms_on_stale_clients_and_runs_stuck_planning(
    metric: str,
) -> None:
    from jobkit_cli.template import load_template
    from tests.support import ROOT

    resources = load_template(ROOT)["Resources"]
    planners = {
        r["Properties"]["Environment"]["Variables"]["JOB_TYPE"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
        and r["Properties"].get("Handler") == "planner.app.handler"
    }
    alarmed = {
        dimension["Value"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == metric
        for dimension in r["Properties"]["Dimensions"]
        if dimension["Name"] == "job_type"
    }
    # bench-noop exists on the local stack only, for make bench: no one is paged for it
    assert planners - alarmed == {"bench-noop"}


def test_a_scheduled_fire_costs_no_more_requests_per_client_than_a_manual_run(
    pipeline: Pipeline,
) -> None:
    # Given 120 clients, all due
    with pipeline.aws.tables["ConfigTable"].batch_writer() as batch:
        for n in range(120):
            config = ClientConfig(job_type=JOB, client_id=f"c{n:03d}", group_id="north")
            batch.put_item(Item=config.to_item())
    made: list[str] = []

    def count(model: Any, **_: Any) -> None:
        made.append(model.name)

    events = pipeline.aws.tables["ConfigTable"].meta.client.meta.events
    events.register("before-call.dynamodb", count)
    pipeline.plan(trigger="cli")
    manual = list(made)
    made.clear()
    pipeline.plan(trigger="schedule", scheduled_time=T0)
    scheduled = list(made)
    events.unregister("before-call.dynamodb", count)
    # Then a scheduled fire makes the same requests: due-ness is read from the rows the
    # planner already queries, and nothing is written on them as it plans (the handler's
    # count of stale clients adds one query per fire, whatever the clients)
    assert sorted(scheduled) == sorted(manual)
    assert len(manual) > 5
