"""Backfills in-process: the window and mode refused with the field named, the work keys of
each mode, the dry run's arithmetic, and a backfill's run on its own lane: exactly once with
the live runs, acknowledging only what it committed, never moving the live cursor."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from jobkit.adapters.aws import dynamodb_client
from jobkit.adapters.records import STATE, record_pk, transition_id
from jobkit.api.resolver import build_app
from jobkit.domain.envelope import new_page_item, record_item_key
from jobkit.domain.job import Job, Page
from jobkit.domain.replay import (
    BackfillSpec,
    Replay,
    ReplayMode,
    TimeWindow,
    backfill_run_id,
    generation_suffix,
)
from jobkit.pipeline.dry_run import ProcessedWork, WindowCounter
from jobkit.pipeline.fetch import PageFetcher
from jobkit.pipeline.lookup import Lookups
from jobkit.pipeline.process import record_key_prefix
from jobkit.runs.models import RunHeader, Trigger
from jobs import JOBS
from jobs.sync_completed_records import CompletedRecord, acknowledge, process
from tests.unit.pipeline import JOB, Pipeline
from tests.unit.test_api_routes import TRIGGER, Api, key
from tests.unit.test_api_routes import api as api  # noqa: F401 - the fixture

# The in-process external system completes every record at 2026-11-20T10:00:00Z.
WINDOW = TimeWindow(
    start=datetime(2026, 11, 19, tzinfo=UTC), end=datetime(2026, 11, 21, tzinfo=UTC)
)
NOW = datetime.now(UTC)
BODY = {"clientIds": ["acme"], "from": "2026-11-19T00:00:00Z", "to": "2026-11-21T00:00:00Z"}


def _plan_backfill(
    pipeline: Pipeline, run_id: str, *clients: str, mode: ReplayMode = ReplayMode.MISSING
) -> RunHeader:
    """A backfill over WINDOW planned, as the API asks the planner; its items queued."""
    return pipeline.plan(
        trigger=Trigger.BACKFILL,
        run_id=run_id,
        requested_by="test",
        client_ids=list(clients),
        backfill=BackfillSpec(window=WINDOW, mode=mode),
    )


def _backfill(pipeline: Pipeline, mode: ReplayMode, run_id: str, *clients: str) -> RunHeader:
    """A backfill planned and run to its end; its header."""
    header = _plan_backfill(pipeline, run_id, *clients, mode=mode)
    pipeline.drain()
    return pipeline.view(header.run_id).header


def _live_run(pipeline: Pipeline) -> RunHeader:
    header = pipeline.plan(trigger="cli")
    pipeline.drain()
    return pipeline.view(header.run_id).header


def _acks(pipeline: Pipeline, client_id: str) -> list[tuple[str, int]]:
    return list(pipeline.external.acked.get(client_id, []))


def _counter(pipeline: Pipeline) -> WindowCounter:
    persistence = DynamoDBPersistenceLayer(
        table_name="IdempotencyTable", boto3_client=dynamodb_client()
    )
    return WindowCounter(
        JOBS,
        pipeline.configs,
        lambda client: pipeline.external,
        pipeline.circuits,
        ProcessedWork(persistence, record_key_prefix("jobkit")),
    )


# The window and the mode, at the API


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"to": "2026-11-19T00:00:00Z"}, "to", "must be after from"),
        ({"from": "2026-11-22T00:00:00Z"}, "to", "must be after from"),
        ({"to": "2999-01-01T00:00:00Z"}, "to", "in the future"),
        ({"mode": "some"}, "mode", "'missing' or 'all'"),
        ({"clientIds": []}, "clientIds", "at least 1"),
        ({"clientIds": None}, "clientIds", ""),
        ({"from": "2026-11-19T00:00:00"}, "from", "timezone"),
    ],
)
def test_a_bad_window_mode_or_client_list_is_a_422_naming_the_field(
    api: Api,  # noqa: F811 - the fixture
    change: dict[str, Any],
    field: str,
    message: str,
) -> None:
    body = {name: value for name, value in {**BODY, **change}.items() if value is not None}
    answer = api.call("POST", f"/jobs/{JOB}/backfills", TRIGGER, body=body)
    assert answer.status == 422, answer.text
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", field]
    assert message in detail["msg"]
    assert api.invoked == []  # no planner invoked, no run opened


def test_a_job_whose_fetch_takes_no_window_cannot_be_backfilled(
    api: Api,  # noqa: F811 - the fixture
) -> None:
    answer = api.call("POST", "/jobs/sync-contacts/backfills", TRIGGER, body=BODY)
    assert answer.status == 422
    assert "takes no time window" in answer.json()["error"]


def test_a_key_limited_to_other_clients_cannot_backfill_this_one(
    api: Api,  # noqa: F811 - the fixture
) -> None:
    answer = api.call("POST", f"/jobs/{JOB}/backfills", key("trigger", clients="other"), body=BODY)
    assert answer.status == 403


def test_the_same_request_id_is_the_same_backfill_and_another_body_is_a_conflict(
    api: Api,  # noqa: F811 - the fixture
) -> None:
    body = {**BODY, "mode": "all", "requestId": "fix-42"}
    first = api.call("POST", f"/jobs/{JOB}/backfills", TRIGGER, body=body)
    again = api.call("POST", f"/jobs/{JOB}/backfills", TRIGGER, body=body)
    assert (first.status, again.status) == (202, 202)
    assert first.json()["run_id"] == again.json()["run_id"] == backfill_run_id(JOB, "fix-42", NOW)
    assert first.json()["trigger"] == "backfill"
    assert first.json()["backfill"]["mode"] == "all"
    assert first.headers["Location"][0].endswith(f"/runs/{first.json()['run_id']}")
    other = api.call("POST", f"/jobs/{JOB}/backfills", TRIGGER, body={**body, "mode": "missing"})
    assert other.status == 409
    assert "fix-42" in other.json()["error"]


# Work keys


def test_missing_mode_keeps_the_live_work_key_and_all_mode_makes_a_generation_of_it() -> None:
    raw = {"id": "r1", "version": 3}
    live = record_item_key(JOB, "acme", "r1", raw)
    missing = record_item_key(JOB, "acme", "r1", raw, Replay(window=WINDOW))
    first = record_item_key(JOB, "acme", "r1", raw, Replay(window=WINDOW, generation="g1"))
    second = record_item_key(JOB, "acme", "r1", raw, Replay(window=WINDOW, generation="g2"))
    assert missing == live
    assert len({live, first, second}) == 3 and first.startswith(live)
    # The transition's id follows: a generation's transition is not the live run's
    revisions = {
        f"v3{generation_suffix(r)}" for r in (None, Replay(window=WINDOW, generation="g1"))
    }
    assert len({transition_id("acme", "r1", rev, "COMPLETED") for rev in revisions}) == 2


def test_a_request_id_names_one_backfill_run_per_job_type() -> None:
    assert backfill_run_id(JOB, "fix-42", NOW) == backfill_run_id(JOB, "fix-42", NOW)
    assert backfill_run_id(JOB, "fix-42", NOW) != backfill_run_id("sync-contacts", "fix-42", NOW)
    unnamed = {backfill_run_id(JOB, None, NOW) for _ in range(3)}
    assert len(unnamed) == 3


# The dry run


def test_the_dry_run_counts_what_is_in_the_window_and_what_is_done(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=6)
    pipeline.seed("bravo", count=2, enabled=False)
    _live_run(pipeline)
    # New records appear in acme's window
    pipeline.external.records["acme"] += [
        {**record, "id": f"acme-n{n}"}
        for n, record in enumerate(pipeline.external.records["acme"][:3])
    ]
    spec = BackfillSpec(window=WINDOW)
    counter = _counter(pipeline)
    acme, bravo, ghost = counter.count(JOB, ["acme", "bravo", "ghost"], spec, "bf-1")
    assert (acme.in_window, acme.already_processed, acme.would_process) == (9, 6, 3)
    assert acme.complete and acme.error is None
    assert bravo.error == "disabled" and ghost.error == f"not configured for {JOB}"
    # In mode all every record is work of a new generation
    every = counter.count(JOB, ["acme"], spec.model_copy(update={"mode": ReplayMode.ALL}), "bf-2")[
        0
    ]
    assert (every.in_window, every.already_processed, every.would_process) == (9, 0, 9)
    # A window with nothing in it
    later = TimeWindow(start=WINDOW.end, end=WINDOW.end + timedelta(1))
    empty = spec.model_copy(update={"window": later})
    assert counter.count(JOB, ["acme"], empty, "bf-3")[0].in_window == 0


def test_the_dry_run_writes_nothing(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=4)
    tables = ("RunsTable", "RecordsTable", "IdempotencyTable", "ConfigTable")
    before = {name: pipeline.aws.tables[name].scan()["Items"] for name in tables}
    _counter(pipeline).count(JOB, ["acme"], BackfillSpec(window=WINDOW), "bf-1")
    assert {name: pipeline.aws.tables[name].scan()["Items"] for name in tables} == before
    assert _acks(pipeline, "acme") == []


def test_a_client_the_dry_run_cannot_read_is_its_own_row(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    pipeline.seed("down", count=2)
    pipeline.external.down.add("down")
    acme, down = _counter(pipeline).count(JOB, ["acme", "down"], BackfillSpec(window=WINDOW), "b")
    assert acme.in_window == 2
    assert down.error is not None and "HTTP 503" in down.error


# A backfill's run


def test_a_missing_backfill_after_a_live_run_does_nothing_again(pipeline: Pipeline) -> None:
    ids = pipeline.seed("acme", count=5)
    _live_run(pipeline)
    acks = _acks(pipeline, "acme")
    history = {rid: pipeline.history("acme", rid) for rid in ids}
    published = len(pipeline.events.published)
    header = _backfill(pipeline, ReplayMode.MISSING, "bf-missing", "acme")
    assert header.trigger is Trigger.BACKFILL and header.status.value == "SUCCEEDED"
    assert (header.received, header.processed, header.skipped) == (5, 0, 5)
    assert {rid: pipeline.history("acme", rid) for rid in ids} == history
    assert _acks(pipeline, "acme") == acks  # no duplicate acknowledgement
    assert len(pipeline.events.published) == published


def test_a_missing_backfill_processes_only_the_new_records_once(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3)
    _live_run(pipeline)
    new = [f"acme-n{n}" for n in range(2)]
    table = pipeline.aws.tables["RecordsTable"]
    for rid in new:
        pipeline.external.records["acme"].append(
            {**pipeline.external.records["acme"][0], "id": rid, "pending_items": []}
        )
        table.put_item(
            Item={"pk": record_pk("acme", rid), "sk": STATE, "status": "OPEN", "version": 0}
        )
    acked_before = len(_acks(pipeline, "acme"))
    header = _backfill(pipeline, ReplayMode.MISSING, "bf-new", "acme")
    assert (header.received, header.processed, header.skipped) == (5, 2, 3)
    assert [pipeline.state("acme", rid)["status"] for rid in new] == ["COMPLETED"] * 2
    assert sorted(rid for rid, _ in _acks(pipeline, "acme")[acked_before:]) == new
    replayed = [e for e in pipeline.events.published if e.record_id in new]
    assert [(e.replay, e.run_id) for e in replayed] == [(True, "bf-new")] * 2
    # Again: nothing more
    again = _backfill(pipeline, ReplayMode.MISSING, "bf-new-2", "acme")
    assert (again.processed, again.skipped) == (0, 5)
    assert len(_acks(pipeline, "acme")) == acked_before + 2


def test_a_backfill_travels_on_its_own_lane(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3)
    _plan_backfill(pipeline, "bf-lane", "acme")
    assert pipeline.receive() == []  # nothing on the live lane
    [page] = pipeline.receive(queue_url=pipeline.aws.backfill_queue_url)
    assert '"replay"' in page["Body"]
    pipeline.invoke([page])
    bodies = [m["Body"] for m in pipeline.receive(queue_url=pipeline.aws.backfill_queue_url)]
    assert len(bodies) == 3 and all('"kind":"record"' in b for b in bodies)
    assert pipeline.receive() == []


def test_mode_all_is_one_new_generation_the_rules_decide_anew(pipeline: Pipeline) -> None:
    ids = pipeline.seed("acme", count=3)
    _live_run(pipeline)
    # One record was moved back by hand since: the rules complete it again
    pipeline.aws.tables["RecordsTable"].update_item(
        Key={"pk": record_pk("acme", ids[0]), "sk": STATE},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "OPEN"},
    )
    acked = len(_acks(pipeline, "acme"))
    header = _backfill(pipeline, ReplayMode.ALL, "bf-all", "acme")
    assert (header.processed, header.skipped) == (1, 2)  # the others are already COMPLETED
    assert pipeline.state("acme", ids[0])["status"] == "COMPLETED"
    assert [h["run_id"] for h in pipeline.history("acme", ids[0])][-1] == "bf-all"
    assert [rid for rid, _ in _acks(pipeline, "acme")[acked:]] == [ids[0]]
    items = pipeline.ledger.queries.items_page("bf-all", None, 50, None)[0]
    assert len(items) == 3 and all(i.item_key.endswith("#g:bf-all") for i in items)
    # The same backfill planned again (its request sent twice) makes no other generation
    _plan_backfill(pipeline, "bf-all", "acme", mode=ReplayMode.ALL)
    pipeline.drain()
    assert len(pipeline.history("acme", ids[0])) == 2
    assert pipeline.view("bf-all").header.processed == 1


def test_an_unknown_or_disabled_client_is_reported_and_the_others_run(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    pipeline.seed("off", count=2, enabled=False)
    header = _backfill(pipeline, ReplayMode.MISSING, "bf-some", "acme", "off", "ghost")
    assert header.received == 2 and header.clients == 1
    assert f"client ghost: not configured for {JOB}" in header.issues
    assert "client off: disabled, not run" in header.issues


def test_a_backfill_page_never_moves_the_live_cursor(pipeline: Pipeline) -> None:
    # A change feed's fetch: its page says where the next live run resumes
    feed = Job(
        name=JOB,
        description="a windowed change feed",
        record_model=CompletedRecord,
        fetch_page=lambda external, client, request: Page([], None, resume_at="seq-42"),
        process=process,
        acknowledge=acknowledge,
        windowed=True,
    )
    pipeline.seed("acme", count=0, cursor="seq-7")
    fetcher = PageFetcher(
        Lookups({JOB: feed}, pipeline.configs),
        lambda client: pipeline.external,
        pipeline.circuits,
        pipeline.ledger.counting,
        pipeline.queue,
        pipeline.configs,
    )

    def page(run_id: str, replay: Replay | None) -> Any:
        return new_page_item(
            job_type=JOB,
            run_id=run_id,
            client_id="acme",
            group_id="north",
            correlation_id=run_id,
            replay=replay,
        )

    fetcher.fetch_once(page("bf-feed", Replay(window=WINDOW)))
    assert pipeline.configs.get(JOB, "acme").cursor == "seq-7"
    fetcher.fetch_once(page("live-feed", None))
    assert pipeline.configs.get(JOB, "acme").cursor == "seq-42"


def test_the_dry_run_through_the_api_answers_200_per_client(pipeline: Pipeline, aws: Any) -> None:
    from jobkit.settings import ApiSettings
    from jobkit.wiring.api import build_services
    from tests.unit.test_api_routes import DASHBOARD, function_environment

    pipeline.seed("acme", count=4)
    _live_run(pipeline)
    settings = ApiSettings.model_validate(function_environment(aws.dlq_url))
    services = replace(
        build_services(settings, DASHBOARD, JOBS), window_counter=lambda: _counter(pipeline)
    )
    api = Api(build_app(services), [])
    answer = api.call(
        "POST",
        f"/jobs/{JOB}/backfills",
        TRIGGER,
        body={**BODY, "clientIds": ["acme", "x"], "dryRun": True},
    )
    assert answer.status == 200, answer.text
    rows = {row["client_id"]: row for row in answer.json()["clients"]}
    assert rows["acme"] | {"error": None} == {
        "client_id": "acme",
        "in_window": 4,
        "already_processed": 4,
        "would_process": 0,
        "complete": True,
        "error": None,
    }
    assert rows["x"]["error"] == f"not configured for {JOB}"
    assert pipeline.ledger.queries.runs_page(JOB, 50, None)[0][0].trigger is Trigger.CLI


def test_a_cancelled_backfill_skips_its_queued_items(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=4)
    _plan_backfill(pipeline, "bf-cancel", "acme")
    [page] = pipeline.receive(queue_url=pipeline.aws.backfill_queue_url)
    pipeline.invoke([page])  # its records are queued on the backfill lane
    assert pipeline.ledger.lifecycle.cancel("bf-cancel")
    pipeline.drain()
    header = pipeline.view("bf-cancel").header
    assert (header.status.value, header.processed, header.skipped) == ("CANCELLED", 0, 4)
    assert [pipeline.state("acme", rid)["status"] for rid in ("acme-r00001",)] == ["IN_PROGRESS"]
    assert _acks(pipeline, "acme") == []
