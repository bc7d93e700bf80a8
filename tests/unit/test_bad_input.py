"""The bad-input corpus: each bad thing gets a clear, specific error, and nothing else is
affected (the other items, clients and runs carry on, and nothing is lost)."""

import json
from typing import Any

import pytest

from jobkit.domain.envelope import new_page_item, new_record_item
from jobkit.runs.models import RunStatus
from tests.unit.pipeline import JOB, Pipeline

GARBAGE_BODIES = [
    ("not json", "(root): Invalid JSON"),
    ("[1, 2, 3]", "(root): Input should be an object"),
    ('{"kind": "record"}', "record.envelope_id: Field required"),
    ('{"kind": "shipment", "envelope_id": "x"}', "(root): Input tag 'shipment'"),
    ('{"a": ' * 50 + "1" + "}" * 50, "(root): Unable to extract tag"),
    ("\x00\x01\x02", "(root): Invalid JSON"),
]


@pytest.mark.parametrize(("body", "reason"), GARBAGE_BODIES)
def test_envelope_garbage_is_dead_lettered_with_its_reason_and_the_rest_carries_on(
    pipeline: Pipeline, body: str, reason: str
) -> None:
    ids = pipeline.seed("acme", count=3)
    run = pipeline.plan(trigger="cli")
    pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.work_queue_url, MessageBody=body)
    pipeline.drain()
    [dead] = pipeline.dead_letters()
    assert dead["error_type"] == "InvalidEnvelopeError"
    assert dead["reason"].startswith(reason), dead["reason"]
    assert pipeline.view(run.run_id).header.status is RunStatus.SUCCEEDED
    assert all(len(pipeline.history("acme", rid)) == 1 for rid in ids)


def _record_item(pipeline: Pipeline, run_id: str, client_id: str, raw: dict[str, Any]) -> Any:
    page = new_page_item(
        job_type=JOB, run_id=run_id, client_id=client_id, group_id="north", correlation_id=run_id
    )
    return new_record_item(page, str(raw.get("id", "x")), raw)


def test_unknown_job_type_is_dead_lettered_by_name(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    run = pipeline.plan(trigger="cli")
    item = _record_item(pipeline, run.run_id, "acme", {"id": "acme-r00001"})
    body = item.model_copy(update={"job_type": "sync-nothing"}).model_dump_json()
    pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.work_queue_url, MessageBody=body)
    pipeline.drain()
    [dead] = pipeline.dead_letters()
    assert (dead["error_type"], dead["reason"]) == (
        "UnknownJobTypeError",
        "unknown job type 'sync-nothing'",
    )
    assert pipeline.view(run.run_id).header.status is RunStatus.SUCCEEDED


def test_a_record_of_another_client_never_touches_that_clients_records(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    [victim] = pipeline.seed("globex", count=1)
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    before = pipeline.state("globex", victim)
    # An item of client acme carrying a record that says it belongs to globex.
    hostile = {
        "id": victim,
        "client_id": "globex",
        "group_id": "north",
        "version": 99,
        "status": "COMPLETED",
        "completed_at": "2026-11-20T10:00:00Z",
    }
    item = _record_item(pipeline, run.run_id, "acme", hostile)
    pipeline.aws.sqs.send_message(
        QueueUrl=pipeline.aws.work_queue_url, MessageBody=item.model_dump_json()
    )
    pipeline.drain()
    [dead] = pipeline.dead_letters()
    assert dead["error_type"] == "TenantMismatchError"
    assert "of client 'globex' arrived on an item of client 'acme'" in dead["reason"]
    assert pipeline.state("globex", victim) == before
    assert len(pipeline.history("globex", victim)) == 1  # only its own run's transition


def test_an_external_page_that_fails_validation_names_the_field(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    pipeline.seed("globex", count=2)
    original = pipeline.external.get

    def malformed(path: str, params: dict[str, Any] | None = None) -> Any:
        if "/acme/" in path:
            return {"records": "not a list", "next_cursor": None}
        return original(path, params)

    pipeline.external.get = malformed
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    acme = next(c for c in view.clients if c.client_id == "acme")
    assert acme.result == "FAILED"
    assert acme.error is not None and "records: Input should be a valid list" in acme.error
    globex = next(c for c in view.clients if c.client_id == "globex")
    assert globex.processed == 2
    [dead] = pipeline.dead_letters()
    assert dead["error_type"] == "InvalidPayloadError" and dead["body"]["kind"] == "page"


def test_an_oversized_record_is_counted_failed_and_the_page_carries_on(pipeline: Pipeline) -> None:
    ids = pipeline.seed("acme", count=3)
    pipeline.external.records["acme"][1]["notes"] = "x" * (1024 * 1024)
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert (view.header.received, view.header.processed, view.header.failed) == (3, 2, 1)
    [item] = [i for i in pipeline.ledger.queries.items(run.run_id) if i.outcome == "failed"]
    assert item.reason == "record too large for the work queue"
    assert item.record_id == ids[1]


def test_malformed_config_rows_are_reported_and_the_other_clients_run(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    table = pipeline.aws.tables["ConfigTable"]
    corpus: dict[str, dict[str, Any]] = {
        "bad-page": {"group_id": "north", "page_size": 100000},
        "bad-route": {"group_id": "north", "route": "../../admin"},
        "no-group": {},
        "extra-field": {"group_id": "north", "shell": "rm -rf /"},
        "bad-settings": {"group_id": "north", "settings": {"k": ["a", "list"]}},
    }
    for client_id, row in corpus.items():
        table.put_item(Item={"job_type": JOB, "client_id": client_id, **row})
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    issues = " | ".join(view.header.issues)
    for client_id, field in [
        ("bad-page", "page_size"),
        ("bad-route", "route"),
        ("no-group", "group_id"),
        ("extra-field", "shell"),
        ("bad-settings", "settings"),
    ]:
        assert f"client {client_id}: invalid configuration: {field}" in issues
    assert "rm -rf" not in issues and "../../admin" not in issues  # never echoes the value
    acme = next(c for c in view.clients if c.client_id == "acme")
    assert acme.processed == 2
    assert json.dumps(view.header.model_dump(mode="json"))  # and the run closes normally
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
