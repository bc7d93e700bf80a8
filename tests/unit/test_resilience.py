"""Client-level retries, the circuit breaker and deferral, in-process (moto, the in-memory fake)."""

import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState

from jobkit.adapters.circuits import circuit_name
from jobkit.runs.models import ClientStatus, RunStatus
from tests.unit.pipeline import Pipeline

COOLDOWN = 4


def _client(pipeline: Pipeline, run_id: str, client_id: str) -> Any:
    return next(c for c in pipeline.view(run_id).clients if c.client_id == client_id)


def test_client_failing_twice_then_recovering_succeeds_on_retry(pipeline: Pipeline) -> None:
    ids = pipeline.seed("acme", count=3)
    pipeline.seed("globex", count=2)
    run = pipeline.plan(trigger="cli")
    pipeline.external.down = {"acme"}
    pipeline.drain()

    acme = _client(pipeline, run.run_id, "acme")
    assert acme.status is ClientStatus.WAITING and acme.retries == 1
    assert acme.last_error is not None and "HTTP 503" in acme.last_error
    assert pipeline.view(run.run_id).header.status is RunStatus.RUNNING  # globex done, acme not
    [request] = pipeline.scheduled_retries()
    assert (request.client_id, request.attempt, request.cursor) == ("acme", 1, None)

    assert pipeline.fire_retries() == ["resumed"]
    pipeline.drain()  # fails a second time
    assert _client(pipeline, run.run_id, "acme").retries == 2

    pipeline.external.down = set()  # the endpoint recovers
    assert pipeline.fire_retries() == ["resumed"]
    pipeline.drain()

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed) == (5, 5)
    acme = _client(pipeline, run.run_id, "acme")
    assert (acme.result, acme.attempt, acme.retries) == ("SUCCEEDED", 2, 2)
    assert all(len(pipeline.history("acme", rid)) == 1 for rid in ids)
    assert sorted(rid for rid, _ in pipeline.external.acked["acme"]) == ids


def test_client_failing_past_the_cap_is_poisoned_on_its_run(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.seed("acme", count=3)
    pipeline.seed("globex", count=2)
    run = pipeline.plan(trigger="cli")
    pipeline.external.down = {"acme"}
    pipeline.drain_with_retries()

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (view.header.processed, view.header.clients_failed) == (2, 1)
    acme = _client(pipeline, run.run_id, "acme")
    assert acme.result == "FAILED" and acme.retries == 3
    assert acme.error is not None and acme.error.startswith("gave up after 3 attempt(s)")
    assert any(i.startswith("client acme: poison: gave up") for i in view.header.issues)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    [poisoned] = [m for m in emitted if "ClientsPoisoned" in m]
    assert poisoned["client_id"] == "acme" and poisoned["ClientsPoisoned"] == [1.0]


def test_retry_of_a_closed_run_is_dropped(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    run = pipeline.plan(trigger="cli")
    pipeline.external.down = {"acme"}
    pipeline.drain()
    pipeline.ledger.lifecycle.cancel(run.run_id)
    assert pipeline.fire_retries() == ["dropped"]
    assert pipeline.receive() == []


@pytest.fixture
def fragile(aws: Any, external: Any) -> Pipeline:
    """Circuits that open after 3 failures and cool down in a few seconds (long enough for
    the test's steps to run while the circuit is open)."""
    return Pipeline(aws, external, circuit_threshold=3, circuit_cooldown=COOLDOWN)


def test_circuit_opens_planner_skips_then_half_open_trial_closes_it(fragile: Pipeline) -> None:
    pipeline = fragile
    pipeline.seed("acme", count=2)
    pipeline.seed("globex", count=2)
    external: Any = pipeline.external

    first = pipeline.plan(trigger="cli")
    external.down = {"acme"}
    pipeline.drain()
    pipeline.fire_retries()
    pipeline.drain()
    pipeline.fire_retries()
    pipeline.drain()  # the third consecutive failure trips acme's circuit (and is the last try)
    assert pipeline.circuits.state("acme") is CircuitState.OPEN
    assert pipeline.circuits.state("globex") is CircuitState.CLOSED
    assert pipeline.view(first.run_id).header.status is RunStatus.COMPLETED_WITH_ERRORS

    calls_before = len(external.calls)
    second = pipeline.plan(trigger="cli")
    header = pipeline.view(second.run_id).header
    assert any(i.startswith("client acme: circuit open, retry scheduled") for i in header.issues)
    assert _client(pipeline, second.run_id, "acme").status is ClientStatus.WAITING
    pipeline.drain()  # globex only: acme is not called while its circuit is open
    assert not any("/acme/" in call for call in external.calls[calls_before:])
    [request] = pipeline.scheduled_retries()
    assert request.client_id == "acme" and request.attempt == 1

    external.down = set()
    time.sleep(COOLDOWN + 0.1)  # the cool-down: the next call is the half-open trial
    assert pipeline.fire_retries() == ["resumed"]
    pipeline.drain()
    assert pipeline.circuits.state("acme") is CircuitState.CLOSED
    view = pipeline.view(second.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert _client(pipeline, second.run_id, "acme").processed == 2


def test_retry_while_the_circuit_is_still_open_waits_longer(fragile: Pipeline) -> None:
    pipeline = fragile
    pipeline.seed("acme", count=1)
    pipeline.circuits._persistence.save_open(circuit_name("acme"), 3, int(time.time()) + 60)
    run = pipeline.plan(trigger="cli")
    assert pipeline.fire_retries() == ["delayed"]
    acme = _client(pipeline, run.run_id, "acme")
    assert acme.status is ClientStatus.WAITING and acme.attempt == 2
    [request] = pipeline.scheduled_retries()
    assert request.attempt == 2 and request.reason.startswith("circuit open")


def test_processor_defers_acks_while_the_circuit_is_open(fragile: Pipeline) -> None:
    pipeline = fragile
    ids = pipeline.seed("acme", count=2)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # the page
    pipeline.circuits._persistence.save_open(circuit_name("acme"), 3, int(time.time()))
    records = pipeline.receive()
    assert pipeline.invoke(records) == []  # not failures: put back as delayed copies

    header = pipeline.view(run.run_id).header
    assert header.status is RunStatus.RUNNING and header.retries == 0
    time.sleep(COOLDOWN + 0.1)  # the copies' delay: the circuit's cool-down
    copies = pipeline.receive()
    assert sorted(json.loads(m["Body"])["deferrals"] for m in copies) == [1, 1]
    pipeline.circuits._persistence.save_closed(circuit_name("acme"))
    pipeline.invoke(copies)

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed) == (2, 2)
    assert all(len(pipeline.history("acme", rid)) == 1 for rid in ids)
    assert sorted(rid for rid, _ in pipeline.external.acked["acme"]) == ids


def test_planning_reads_many_circuits_a_hundred_at_a_time(aws: Any) -> None:
    import boto3
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
        CircuitBreakerDynamoDBPersistence,
    )

    from jobkit.adapters.circuits import Circuits

    client = boto3.client("dynamodb")
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    store = CircuitBreakerDynamoDBPersistence(table_name="ControlTable", boto3_client=client)
    circuits = Circuits(store, cooldown_seconds=60)
    now = int(time.time())
    store.save_open(circuit_name("c-007"), failure_count=5, opened_at=now)
    store.save_open(circuit_name("c-150"), failure_count=5, opened_at=now - 10)
    store.save_open(circuit_name("c-200"), failure_count=5, opened_at=now - 61)  # cooled down
    calls.clear()

    opened = circuits.open_circuits([f"c-{n:03d}" for n in range(250)])

    assert sorted(opened) == ["c-007", "c-150"]
    assert 49 <= opened["c-150"].retry_in_seconds <= 50
    assert calls == ["BatchGetItem"] * 3


class _ThrottledTable:
    """BatchGetItem as a throttled table answers: part of the keys left unprocessed."""

    def __init__(self, unprocessed_rounds: int) -> None:
        self.unprocessed_rounds = unprocessed_rounds
        self.requests: list[list[dict[str, Any]]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        keys = RequestItems["t"]["Keys"]
        self.requests.append(keys)
        if len(self.requests) <= self.unprocessed_rounds:
            return {"Responses": {"t": keys[:1]}, "UnprocessedKeys": {"t": {"Keys": keys[1:]}}}
        return {"Responses": {"t": keys}, "UnprocessedKeys": {}}


def test_throttled_batch_reads_ask_again_after_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobkit.adapters.aws import batch_get

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    table = _ThrottledTable(unprocessed_rounds=2)
    keys = [{"k": n} for n in range(150)]
    found = list(batch_get(table, "t", keys))
    # Every key found once; the unprocessed ones asked again, after a wait each time
    assert sorted(item["k"] for item in found) == list(range(150))
    assert [len(r) for r in table.requests] == [100, 99, 98, 50]
    assert len(waits) == 2


def test_a_table_that_stays_throttled_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobkit.adapters.aws import batch_get
    from jobkit.domain.errors import ThrottledError

    monkeypatch.setattr(time, "sleep", lambda _: None)
    with pytest.raises(ThrottledError, match=r"t: 94 key\(s\) still unprocessed"):
        list(batch_get(_ThrottledTable(unprocessed_rounds=99), "t", [{"k": n} for n in range(100)]))
