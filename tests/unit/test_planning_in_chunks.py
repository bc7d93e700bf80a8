"""Planning a chunk of clients at a time, with requests in flight together: every client is
planned once whatever the chunk, an invalid row still closes as it opens, and a request that
fails fails the planning (the next attempt resumes it) after the others ended."""

import time

import pytest

from jobkit.adapters.aws import in_parallel
from jobkit.pipeline import plan
from jobkit.runs.models import ClientStatus, RunStatus
from tests.unit.pipeline import JOB, Pipeline


def test_every_client_is_planned_once_across_chunks(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given seven clients, one of them invalid, planned two at a time
    monkeypatch.setattr(plan, "PLAN_CHUNK", 2)
    clients = [f"c{n}" for n in range(6)]
    for client_id in clients:
        pipeline.seed(client_id, count=3)
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={"job_type": JOB, "client_id": "broken", "group_id": "north", "days": "often"}
    )
    # When the run is planned and processed
    run = pipeline.plan(trigger="cli")
    pages = pipeline.receive(max_messages=10)
    pipeline.release(pages)
    # Then each client has one page item and one row, the invalid one closed as it opened
    assert sorted(str(p["client_id"]) for p in map(_body, pages)) == clients
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.clients == 7 and view.header.processed == 18
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    rows = {c.client_id: c for c in view.clients}
    assert rows["broken"].status is ClientStatus.INVALID_CONFIG
    assert sorted(rows) == sorted([*clients, "broken"])


def _body(message: dict[str, object]) -> dict[str, object]:
    import json

    body = json.loads(str(message["Body"]))
    assert isinstance(body, dict)
    return body


def test_requests_in_parallel_all_end_and_the_first_failure_is_raised() -> None:
    done: list[int] = []

    def call(n: int) -> None:
        if n == 1:
            raise RuntimeError("request 1 refused")
        time.sleep(0.01)
        done.append(n)

    with pytest.raises(RuntimeError, match="request 1 refused"):
        in_parallel(call, list(range(12)))
    assert sorted(done) == [n for n in range(12) if n != 1]
