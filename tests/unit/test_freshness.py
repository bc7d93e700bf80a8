"""Freshness: each client's row keeps when its last clean run started, and a client with none
for longer than its stale age is stale: on the job-health page (listed with those needing
attention), and counted from an index that holds one row per stale client."""

from datetime import UTC, datetime, timedelta
from typing import Any

from jobkit.adapters.config import ClientConfig, epoch_minute
from jobkit.api.visibility import EveryClient
from jobkit.ops.health_page import ClientsShown, JobHealthOut, build_health
from tests.unit.pipeline import JOB, Pipeline


def _health(pipeline: Pipeline, **options: Any) -> JobHealthOut:
    report = build_health(
        {JOB: "rate(30 minutes)"},
        pipeline.configs,
        EveryClient(pipeline.ledger.queries),
        0,
        **options,
    )
    [job] = report.jobs
    return job


def _synced(pipeline: Pipeline, client_id: str, ago: timedelta, **config: Any) -> None:
    """A client whose last clean run started ``ago``."""
    pipeline.seed(client_id, count=0, **config)
    pipeline.configs.record_result(JOB, client_id, failed=False, started=datetime.now(UTC) - ago)


def test_a_clean_run_is_the_clients_last_success(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    header = pipeline.plan(trigger="cli")
    pipeline.drain()
    config = pipeline.configs.get(JOB, "acme")
    assert config.last_success_at == header.created_at
    [line] = _health(pipeline).clients
    assert (line.last_success_at, line.stale, line.age_minutes) == (header.created_at, False, 0)


def test_a_failed_run_is_not_a_success(pipeline: Pipeline) -> None:
    _synced(pipeline, "acme", timedelta(hours=1))
    before = pipeline.configs.get(JOB, "acme").last_success_at
    pipeline.configs.record_result(JOB, "acme", failed=True)
    assert pipeline.configs.get(JOB, "acme").last_success_at == before


def test_stale_clients_are_listed_with_those_needing_attention(pipeline: Pipeline) -> None:
    # Given, at a half-hourly frequency (stale after 90 minutes): a fresh client, one last
    # synced two hours ago, one a day ago, one a day ago but allowed two days, and a
    # disabled one a day ago (nothing is expected of it)
    _synced(pipeline, "a-fresh", timedelta(minutes=10))
    _synced(pipeline, "b-late", timedelta(hours=2))
    _synced(pipeline, "c-later", timedelta(days=1))
    _synced(pipeline, "d-patient", timedelta(days=1), stale_after_minutes=2880)
    _synced(pipeline, "e-off", timedelta(days=1), enabled=False)
    # When the health page lists them
    job = _health(pipeline)
    # Then the stale ones come first, longest stale first, with their age
    assert [c.client_id for c in job.clients][:2] == ["c-later", "b-late"]
    lines = {c.client_id: c for c in job.clients}
    assert {c for c, line in lines.items() if line.stale} == {"b-late", "c-later"}
    assert lines["c-later"].age_minutes == 1440
    assert lines["b-late"].stale_after_minutes == 90
    assert lines["d-patient"].stale_after_minutes == 2880
    assert (job.clients_stale, job.clients_needing_attention) == (2, 2)


def test_a_failing_stale_client_counts_once_and_streaks_come_first(pipeline: Pipeline) -> None:
    _synced(pipeline, "stale", timedelta(days=1))
    _synced(pipeline, "stale-and-failing", timedelta(days=1))
    pipeline.configs.record_result(JOB, "stale-and-failing", failed=True)
    job = _health(pipeline)
    assert [c.client_id for c in job.clients] == ["stale-and-failing", "stale"]
    assert (job.clients_stale, job.clients_needing_attention) == (2, 2)


def test_a_client_that_never_synced_is_stale_its_stale_age_after_it_was_configured(
    pipeline: Pipeline,
) -> None:
    pipeline.seed("new", count=0, frequency_minutes=60)
    config = pipeline.configs.get(JOB, "new")
    now = epoch_minute(datetime.now(UTC))
    assert config.last_success_at is None
    assert config.stale_at is not None and now + 179 <= config.stale_at <= now + 180
    # And editing it does not restart the clock; a longer stale age extends it
    pipeline.configs.put(config.model_copy(update={"stale_after_minutes": 600}))
    edited = pipeline.configs.get(JOB, "new")
    assert edited.stale_at == (config.fresh_since or 0) + 600


def test_enabling_a_client_restarts_its_freshness(pipeline: Pipeline) -> None:
    _synced(pipeline, "acme", timedelta(days=3))
    pipeline.configs.set_enabled(JOB, "acme", False)
    assert _health(pipeline).clients_stale == 0
    pipeline.configs.set_enabled(JOB, "acme", True)
    assert _health(pipeline).clients_stale == 0
    config = pipeline.configs.get(JOB, "acme")
    assert config.last_success_at is not None  # its last success is still what it was
    assert datetime.now(UTC) - config.last_success_at > timedelta(days=2)


def test_a_limited_key_sees_its_own_clients_staleness(pipeline: Pipeline) -> None:
    _synced(pipeline, "mine", timedelta(days=1))
    _synced(pipeline, "theirs", timedelta(days=1))
    job = _health(pipeline, shown=ClientsShown(only=frozenset({"mine"})))
    assert [(c.client_id, c.stale) for c in job.clients] == [("mine", True)]
    assert (job.clients_stale, job.clients_needing_attention) == (1, 1)


def test_counting_stale_clients_reads_only_the_stale_ones(pipeline: Pipeline) -> None:
    # Given 300 clients of which 3 are stale
    with pipeline.aws.tables["ConfigTable"].batch_writer() as batch:
        for n in range(297):
            config = ClientConfig(job_type=JOB, client_id=f"c{n:03d}", group_id="north")
            batch.put_item(Item=config.to_item())
    for n in range(3):
        _synced(pipeline, f"stale-{n}", timedelta(days=1))
    read: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read.append(int(parsed.get("ScannedCount", 0)))

    events = pipeline.aws.tables["ConfigTable"].meta.client.meta.events
    events.register("after-call.dynamodb.Query", count)
    stale = pipeline.planner.stale_count()
    events.unregister("after-call.dynamodb.Query", count)
    # Then the planner counts them from the index, reading three rows
    assert (stale, sum(read)) == (3, 3)


def test_stale_clients_are_found_while_the_index_is_still_building(pipeline: Pipeline) -> None:
    _synced(pipeline, "late", timedelta(days=1))
    _synced(pipeline, "fresh", timedelta(minutes=1))
    table = pipeline.configs._table
    original = table.query
    asked: list[str] = []

    def building(**kwargs: Any) -> Any:
        asked.append(kwargs.get("IndexName", "table"))
        if kwargs.get("IndexName"):
            from botocore.exceptions import ClientError

            message = "Cannot read from backfilling global secondary index: by-stale-at"
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": message}}, "Query"
            )
        return original(**kwargs)

    table.query = building
    try:
        assert list(pipeline.configs.stale(JOB, datetime.now(UTC))) == ["late"]
        assert asked == ["by-stale-at", "table"]
    finally:
        table.query = original
