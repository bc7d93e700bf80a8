"""A preview of the rules in-process: one row per record of the client's next page (the
transition, the skip and why, or the error naming the field), whether a run would
acknowledge it, and nothing written; and the route's refusals."""

from dataclasses import replace
from typing import Any

import pytest

from jobkit.adapters.records import STATE, record_pk
from jobkit.api.resolver import build_app
from jobkit.domain.errors import JobModuleError
from jobkit.domain.job import Transition
from jobkit.pipeline.preview import FetchFailedError, Preview, PreviewRow, RulePreview
from jobs import JOBS
from tests.unit.pipeline import JOB, Pipeline
from tests.unit.test_api_routes import DASHBOARD, READ, TRIGGER, Api, function_environment, key

TABLES = ("RunsTable", "RecordsTable", "IdempotencyTable", "ConfigTable")


def _preview(pipeline: Pipeline, jobs: Any = JOBS) -> RulePreview:
    return RulePreview(
        jobs,
        pipeline.configs,
        lambda client: pipeline.external,
        pipeline.circuits,
        pipeline.workflow,
    )


def _rows(preview: Preview) -> dict[str, PreviewRow]:
    return {row.record_id: row for row in preview.rows}


def _api(pipeline: Pipeline, aws: Any, jobs: Any = JOBS) -> Api:
    from jobkit.settings import ApiSettings
    from jobkit.wiring.api import build_services

    settings = ApiSettings.model_validate(function_environment(aws.dlq_url))
    services = replace(
        build_services(settings, DASHBOARD, JOBS), rule_preview=lambda: _preview(pipeline, jobs)
    )
    return Api(build_app(services), [])


def test_each_record_shows_what_the_rules_decide_and_nothing_is_written(
    pipeline: Pipeline,
) -> None:
    ok, done, unknown, poison = pipeline.seed("acme", count=4, poison=("acme-r00004",))
    pipeline.aws.tables["RecordsTable"].update_item(
        Key={"pk": record_pk("acme", done), "sk": STATE},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "COMPLETED"},
    )
    pipeline.aws.tables["RecordsTable"].delete_item(
        Key={"pk": record_pk("acme", unknown), "sk": STATE}
    )
    before = {name: pipeline.aws.tables[name].scan()["Items"] for name in TABLES}

    preview = _preview(pipeline).preview(JOB, "acme", limit=20)

    rows = _rows(preview)
    assert list(rows) == [ok, done, unknown, poison] and preview.more is False
    assert rows[ok] == PreviewRow(
        ok,
        "transition",
        "completed in the external system at 2026-11-20T10:00:00+00:00",
        "IN_PROGRESS",
        "COMPLETED",
        acknowledged=True,
    )
    assert rows[done] == PreviewRow(
        done,
        "skip",
        "record is COMPLETED: no transition to COMPLETED",
        "COMPLETED",
        "COMPLETED",
        acknowledged=True,
    )
    assert rows[unknown].decision == "error" and not rows[unknown].acknowledged
    assert "is unknown" in rows[unknown].reason and unknown in rows[unknown].reason
    assert rows[poison].decision == "error" and not rows[poison].acknowledged
    assert "version" in rows[poison].reason and "completed_at" in rows[poison].reason
    # Nothing written, acknowledged or queued
    assert {name: pipeline.aws.tables[name].scan()["Items"] for name in TABLES} == before
    assert pipeline.external.acked == {}
    assert pipeline.receive() == []


def test_a_skip_says_why_and_would_be_acknowledged(pipeline: Pipeline) -> None:
    [record] = pipeline.seed("acme", group_id="south", count=1)
    pipeline.configs.put(pipeline.configs.get(JOB, "acme").model_copy(update={"group_id": "north"}))
    [row] = _preview(pipeline).preview(JOB, "acme", limit=5).rows
    assert (row.decision, row.acknowledged) == ("skip", True)
    assert row.reason == "record is in group south, client syncs north"


def test_the_limit_cuts_the_page_and_says_there_is_more(pipeline: Pipeline) -> None:
    ids = pipeline.seed("acme", count=6)
    preview = _preview(pipeline).preview(JOB, "acme", limit=3)
    assert [row.record_id for row in preview.rows] == ids[:3] and preview.more is True
    # The page asked for is no bigger than what is shown
    assert pipeline.external.queries[-1]["limit"] == 3


def test_rules_that_raise_are_that_rows_error_and_the_others_are_shown(
    pipeline: Pipeline,
) -> None:
    first, second = pipeline.seed("acme", count=2)
    base = JOBS[JOB]

    def process(record: Any, client: Any) -> Transition:
        if record.id == first:
            raise ZeroDivisionError("division by zero")
        return base.process(record, client)  # type: ignore[return-value]

    jobs = {JOB: replace(base, process=process)}
    rows = _rows(_preview(pipeline, jobs).preview(JOB, "acme", limit=5))
    assert rows[first].decision == "error"
    assert rows[first].reason == "the rules raised ZeroDivisionError: division by zero"
    assert rows[second].decision == "transition"


def test_an_endpoint_that_is_down_is_the_http_error_and_nothing_is_written(
    pipeline: Pipeline,
) -> None:
    pipeline.seed("acme", count=2)
    pipeline.external.down.add("acme")
    before = {name: pipeline.aws.tables[name].scan()["Items"] for name in TABLES}
    with pytest.raises(FetchFailedError, match=r"client acme: .*HTTP 503"):
        _preview(pipeline).preview(JOB, "acme", limit=5)
    assert {name: pipeline.aws.tables[name].scan()["Items"] for name in TABLES} == before


def test_the_route_answers_the_rows_to_a_trigger_key(pipeline: Pipeline, aws: Any) -> None:
    ok, _ = pipeline.seed("acme", count=2)
    answer = _api(pipeline, aws).call(
        "POST", f"/jobs/{JOB}/preview", TRIGGER, body={"clientId": "acme", "limit": 1}
    )
    assert answer.status == 200, answer.text
    assert answer.json() == {
        "job_type": JOB,
        "client_id": "acme",
        "records": [
            {
                "record_id": ok,
                "decision": "transition",
                "reason": "completed in the external system at 2026-11-20T10:00:00+00:00",
                "from_status": "IN_PROGRESS",
                "to_status": "COMPLETED",
                "acknowledged": True,
            }
        ],
        "more": True,
    }


@pytest.mark.parametrize(
    ("job_type", "body", "as_key", "status", "message"),
    [
        (JOB, {"clientId": "ghost"}, TRIGGER, 404, f"client ghost is not configured for job {JOB}"),
        ("sync-nothing", {"clientId": "acme"}, TRIGGER, 404, "unknown job type 'sync-nothing'"),
        (JOB, {"clientId": "acme"}, READ, 403, "lacks trigger scope"),
        (JOB, {"clientId": "acme"}, key("trigger", clients="bravo"), 403, "lacks trigger"),
        (JOB, {"clientId": "acme", "limit": 0}, TRIGGER, 422, "limit"),
        (JOB, {"clientId": "acme", "limit": 101}, TRIGGER, 422, "limit"),
        (JOB, {"client": "acme"}, TRIGGER, 422, "clientId"),
    ],
)
def test_the_route_refuses_naming_what(
    pipeline: Pipeline,
    aws: Any,
    job_type: str,
    body: dict[str, Any],
    as_key: dict[str, str],
    status: int,
    message: str,
) -> None:
    pipeline.seed("acme", count=1)
    answer = _api(pipeline, aws).call("POST", f"/jobs/{job_type}/preview", as_key, body=body)
    assert answer.status == status, answer.text
    assert message in answer.json()["error"]


def test_a_client_limited_key_previews_its_own_client(pipeline: Pipeline, aws: Any) -> None:
    pipeline.seed("acme", count=1)
    own = key("trigger", clients="acme")
    answer = _api(pipeline, aws).call(
        "POST", f"/jobs/{JOB}/preview", own, body={"clientId": "acme"}
    )
    assert answer.status == 200, answer.text


def test_a_down_endpoint_is_a_502_naming_the_http_error(pipeline: Pipeline, aws: Any) -> None:
    pipeline.seed("acme", count=1)
    pipeline.external.down.add("acme")
    answer = _api(pipeline, aws).call(
        "POST", f"/jobs/{JOB}/preview", TRIGGER, body={"clientId": "acme"}
    )
    assert answer.status == 502
    assert "HTTP 503" in answer.json()["error"]


def test_a_job_module_that_fails_to_load_is_named(pipeline: Pipeline, aws: Any) -> None:
    pipeline.seed("acme", count=1)

    class Broken(dict[str, Any]):
        def __getitem__(self, name: str) -> Any:
            raise JobModuleError(f"job module jobs.x failed to load: SyntaxError: {name}")

    answer = _api(pipeline, aws, Broken()).call(
        "POST", f"/jobs/{JOB}/preview", TRIGGER, body={"clientId": "acme"}
    )
    assert answer.status == 500
    assert answer.json()["error"] == f"job module jobs.x failed to load: SyntaxError: {JOB}"
