"""The processor's time budget: a batch always returns, settled, before the function's timeout.

The external system here is slow on a fake clock that drives the Lambda context's remaining
time too, behind the real HTTP client (retries, rate limit, time budget): nothing sleeps.
"""

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import httpx_retries.retry
import pytest

from jobkit.adapters.external import ExternalSystem, call_worst_case_seconds
from jobkit.adapters.http_client import build_http_client
from jobkit.adapters.ratelimit import OutOfTimeError, TokenBucket, time_budget
from jobkit.domain.envelope import PageItem, RecordItem, parse_work_item
from jobkit.domain.errors import ExternalUnavailableError
from jobkit.pipeline.budget import TimeBudget
from jobkit.pipeline.process import Processor
from jobkit.runs.models import RunStatus
from jobkit.settings import ProcessorSettings
from tests.support import processor_env
from tests.unit.conftest import FakeExternalSystem
from tests.unit.pipeline import ClockedContext, FakeClock, Pipeline

TIMEOUT = 5.0  # the template's ExternalTimeoutSeconds on AWS
ATTEMPTS = 3
REDRIVE_AFTER = 5


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    # httpx-retries sleeps between attempts: on the fake clock too.
    monkeypatch.setattr(httpx_retries.retry, "time", SimpleNamespace(sleep=clock.sleep))
    return clock


class SlowProvider:
    """The fake external system behind the real HTTP client, answering after a latency on the
    fake clock; an answer slower than the request's read timeout is a timeout, as on the
    network."""

    def __init__(self, fake: FakeExternalSystem, clock: FakeClock, bucket: TokenBucket) -> None:
        self.fake = fake
        self.clock = clock
        self.get_seconds = 0.0
        self.ack_seconds = 0.0
        self.sent: list[tuple[str, str]] = []  # (method, client) of every request answered
        http = build_http_client(
            "http://external.test",
            TIMEOUT,
            ATTEMPTS,
            bucket,
            transport=httpx.MockTransport(self._answer),
        )
        self.system = ExternalSystem(http)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        client_id = request.url.path.split("/")[3]
        self.sent.append((request.method, client_id))
        latency = self.get_seconds if request.method == "GET" else self.ack_seconds
        read_timeout = float(request.extensions["timeout"]["read"])
        if latency > read_timeout:
            self.clock.sleep(read_timeout)
            raise httpx.ReadTimeout("timed out", request=request)
        self.clock.sleep(latency)
        try:
            if request.method == "GET":
                body = self.fake.get(request.url.path, dict(request.url.params))
            else:
                body = self.fake.post(request.url.path, json.loads(request.content))
        except ExternalUnavailableError:
            return httpx.Response(503, json={"error": "unavailable"})
        return httpx.Response(200, json=body)

    def fetched(self) -> set[str]:
        return {client for method, client in self.sent if method == "GET"}

    def acknowledged(self) -> list[str]:
        return [client for method, client in self.sent if method == "POST"]


def _bucket(aws: Any, clock: FakeClock, rate: float = 20, burst: int = 40) -> TokenBucket:
    return TokenBucket(
        aws.tables["ControlTable"],
        "external.test",
        rate=rate,
        burst=burst,
        clock=clock.time,
        sleep=clock.sleep,
    )


@pytest.fixture
def slow(aws: Any, external: FakeExternalSystem, clock: FakeClock) -> Iterator[Any]:
    """The pipeline with the slow provider, the default budget and the work queue's redrive
    as the template has it (maxReceiveCount 5)."""
    provider = SlowProvider(external, clock, _bucket(aws, clock))
    pipeline = Pipeline(aws, external)
    pipeline.processor = Processor(
        pipeline.dependencies(external=lambda client: provider.system, budget=TimeBudget())
    )
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=aws.dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.sqs.set_queue_attributes(
        QueueUrl=aws.work_queue_url,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(REDRIVE_AFTER)}
            )
        },
    )
    yield SimpleNamespace(pipeline=pipeline, provider=provider, clock=clock)


def _seed(pipeline: Pipeline, clients: int, records: int, prefix: str = "c") -> list[str]:
    names = [f"{prefix}{n:02d}" for n in range(clients)]
    for name in names:
        pipeline.seed(name, count=records)
    return names


def _drain(slow: Any, max_rounds: int = 100) -> list[float]:
    """Batches of 50 until the queue is empty, each a fresh 30 s invocation; returns the
    seconds each one took (on the fake clock)."""
    took: list[float] = []
    for _ in range(max_rounds):
        messages = slow.pipeline.receive_batch(50)
        if not messages:
            return took
        context = ClockedContext(clock=slow.clock)
        assert slow.pipeline.invoke(messages, context) == []
        took.append(context.seconds_used())
    raise AssertionError("the work queue did not drain")


def _queued(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Every message on the work queue, left there."""
    messages = pipeline.receive_batch(1000)
    pipeline.release(messages)
    return messages


def _run_closes_exactly(slow: Any, run_id: str, records: int) -> None:
    pipeline = slow.pipeline
    header = pipeline.view(run_id).header
    assert header.status is RunStatus.SUCCEEDED
    assert (header.received, header.processed, header.failed, header.retries) == (
        records,
        records,
        0,
        0,
    )
    acked = sum(len(acks) for acks in pipeline.external.acked.values())
    assert acked == records
    assert pipeline.dead_letters() == []


# -- one external call within its budget ------------------------------------------------------


def test_a_calls_worst_case_as_configured_does_not_fit_the_invocation_so_it_gets_a_budget() -> None:
    # Given the template's settings on AWS (5 s per attempt, 3 attempts, 10 s token patience)
    # and locally (2 s): per attempt a token wait, a connect (2 s) and an answer; 5 s backoffs
    assert call_worst_case_seconds(5.0, 3, 10.0) == 3 * (10 + 2 + 5) + 2 * 5 == 61
    assert call_worst_case_seconds(2.0, 3, 10.0) == 3 * (10 + 2 + 2) + 2 * 5 == 52
    # When the processor reads its settings
    settings = ProcessorSettings.model_validate(processor_env())
    # Then a call is given the 10 s budget and a message starts only with its worst case left
    budget = TimeBudget.from_settings(settings)
    assert budget == TimeBudget(call_seconds=10.0, item_seconds=1.0, settle_seconds=3.0)
    page, record = _items()
    assert budget.to_start(page, owes_ack=False) == 10 + 1 + 3
    assert budget.to_start(page, owes_ack=True) == 10 + 1 + 3 + 10
    assert budget.to_start(record, owes_ack=True) == 1 + 3 + 10
    assert budget.to_acknowledge() == 10 + 3


def test_a_call_budget_shorter_than_one_attempt_is_refused_at_cold_start() -> None:
    settings = ProcessorSettings.model_validate(
        processor_env(EXTERNAL_CALL_BUDGET_SECONDS="6", EXTERNAL_TIMEOUT_SECONDS="5")
    )
    with pytest.raises(ValueError, match=r"must cover one attempt \(7 s"):
        TimeBudget.from_settings(settings)


def test_retries_stop_when_a_whole_attempt_no_longer_fits_the_budget(
    aws: Any, clock: FakeClock
) -> None:
    # Given an external system that takes 2 s to answer 503, every time
    sent: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        clock.sleep(2.0)
        return httpx.Response(503)

    external = _external(aws, clock, unavailable)
    # When a call is made within a 10 s budget (an attempt may take 2 + 5 s)
    start = clock.now
    with (
        time_budget(lambda: start + 10 - clock.now),
        pytest.raises(ExternalUnavailableError, match="HTTP 503 after retries"),
    ):
        external.get("/v1/clients/acme/records")
    # Then the third attempt is not started (after two answers, under 7 s are left): the call
    # fails with the external system's last answer, within its budget
    assert len(sent) == 2
    assert clock.now - start <= 10
    # and outside of a budget the same call makes its three attempts
    with pytest.raises(ExternalUnavailableError):
        external.get("/v1/clients/acme/records")
    assert len(sent) == 2 + 3


def test_a_retry_after_that_would_leave_no_room_for_the_attempt_ends_the_call(
    aws: Any, clock: FakeClock
) -> None:
    # Given an external system that answers at once with 429 and Retry-After: 5
    sent: list[float] = []

    def throttled(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(429, headers={"Retry-After": "5"})

    external = _external(aws, clock, throttled)
    # When a call is made with 13 s left
    start = clock.now
    with (
        time_budget(lambda: start + 13 - clock.now),
        pytest.raises(ExternalUnavailableError, match="RetryOutOfTime"),
    ):
        external.get("/v1/clients/acme/records")
    # Then the first retry waits the 5 s asked (8 s are left, an attempt may take 7), the
    # second would leave 3 s: the call ends there, in time, never retrying early
    assert [round(t - start, 3) for t in sent] == [0, 5]
    assert clock.now - start <= 13


def test_a_first_attempt_that_does_not_fit_is_not_sent_and_says_so(
    aws: Any, clock: FakeClock
) -> None:
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(200, json={})

    external = _external(aws, clock, answer)
    with time_budget(lambda: 6.5), pytest.raises(OutOfTimeError, match="6.5 s left"):
        external.get("/v1/clients/acme/records")
    assert sent == []


def test_a_token_wait_is_cut_to_the_budget_and_a_retry_without_a_token_fails_as_the_call(
    aws: Any, clock: FakeClock
) -> None:
    # Given a provider limit of one request per 2 s, and an external system answering 503
    sent: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(503)

    external = _external(aws, clock, unavailable, bucket=_bucket(aws, clock, rate=0.5, burst=1))
    # When a call has 8 s: its retry would wait 2 s for a token, and only 1 s may be waited
    start = clock.now
    with time_budget(lambda: start + 8 - clock.now), pytest.raises(ExternalUnavailableError) as err:
        external.get("/v1/clients/acme/records")
    # Then the retry is not sent and the call fails as its first attempt did
    assert len(sent) == 1
    assert "RetryOutOfTime" in str(err.value)
    assert clock.now - start <= 8
    # And a first attempt that cannot get its token in time is the caller's lack of time
    with time_budget(lambda: 7.5), pytest.raises(OutOfTimeError, match="within the 0.5 s left"):
        external.get("/v1/clients/acme/records")
    assert len(sent) == 1


def test_a_token_wait_never_sleeps_past_its_patience(aws: Any, clock: FakeClock) -> None:
    # Given a limit of one request per second, its token just taken
    bucket = TokenBucket(
        aws.tables["ControlTable"],
        "external.test",
        rate=1,
        burst=1,
        max_wait_seconds=1.0,
        clock=clock.time,
        sleep=clock.sleep,
    )
    bucket.acquire()
    start = clock.now
    # When the next request waits for its token (the wait is jittered up to 1.5 x)
    bucket.acquire()
    # Then it slept no longer than its patience: what a budget's worst case counts on
    assert 0 < clock.now - start <= 1.0


# -- the processor ----------------------------------------------------------------------------


def test_a_batch_of_50_pages_behind_a_slow_external_system_returns_in_time(slow: Any) -> None:
    # Given 50 clients of 2 records each, behind an external system that answers in 2 s
    pipeline, provider = slow.pipeline, slow.provider
    clients = _seed(pipeline, clients=50, records=2)
    provider.get_seconds = provider.ack_seconds = 2.0
    run = pipeline.plan(trigger="cli")
    batch = pipeline.receive_batch(50)
    assert len(batch) == 50
    # When the processor gets the 50 page items in one batch (100 s of fetching) with 30 s
    context = ClockedContext(clock=slow.clock)
    failed = pipeline.invoke(batch, context)
    # Then it returned in time, having started pages while 14 s were left (its fetch's 10 s
    # budget, 1 s for its own requests, 3 s to settle): at 30, 28, ..., 14 s
    assert context.get_remaining_time_in_millis() > 0
    started = provider.fetched()
    assert len(started) == 9
    assert failed == []
    # every started page was counted on its run, the others not at all
    rows = {row.client_id: row for row in pipeline.view(run.run_id).clients}
    assert {c for c in clients if rows[c].pages == 1} == started
    assert all(
        (rows[c].pages, rows[c].received, rows[c].retries) == (0, 0, 0)
        for c in clients
        if c not in started
    )
    # and the unstarted ones are back on the queue, unchanged, with no receive used up
    queued = _queued(pipeline)
    pages = [m for m in queued if isinstance(parse_work_item(m["Body"]), PageItem)]
    assert sorted(m["Body"] for m in pages) == sorted(
        m["Body"] for m in batch if parse_work_item(m["Body"]).client_id not in started
    )
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in pages)
    assert len(queued) == len(pages) + 2 * len(started)

    # When the rest is processed in batches of 50, each invocation with its 30 s
    took = _drain(slow)
    # Then every invocation returned in time, every record was processed and acknowledged
    # once, and the run closes with exact totals: nothing reached the DLQ
    assert len(took) > 1 and max(took) < 30
    _run_closes_exactly(slow, run.run_id, records=100)
    assert sorted(provider.fetched()) == clients
    assert len([m for m, _ in provider.sent if m == "GET"]) == 50  # no page fetched twice
    assert all(len(pipeline.history(c, f"{c}-r{n:05d}")) == 1 for c in clients for n in (1, 2))


def test_a_slow_ack_at_the_end_is_not_attempted_out_of_time_and_is_retried_without_reprocessing(
    slow: Any, capsys: Any, caplog: Any
) -> None:
    # Given 10 clients of 5 records each, whose pages were fetched at once
    pipeline, provider = slow.pipeline, slow.provider
    clients = _seed(pipeline, clients=10, records=5)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive_batch(50), ClockedContext(clock=slow.clock))
    records = pipeline.receive_batch(50)
    assert len(records) == 50
    # and an external system whose acknowledgements take 4 s (40 s for the batch's 10)
    provider.ack_seconds = 4.0
    capsys.readouterr()
    caplog.clear()
    # When the processor gets the 50 record items of the 10 clients in one batch
    context = ClockedContext(clock=slow.clock)
    assert pipeline.invoke(records, context) == []
    # Then every record was processed, and acks were attempted while 13 s were left (10 s for
    # the call, 3 s to settle): at 30, 26, 22, 18 and 14 s; it returned in time
    assert context.get_remaining_time_in_millis() > 0
    acked = provider.acknowledged()
    assert len(acked) == 5
    rows = {row.client_id: row for row in pipeline.view(run.run_id).clients}
    assert {c for c in clients if rows[c].processed == 5} == set(acked)
    waiting = [c for c in clients if c not in acked]
    assert all((rows[c].processed, rows[c].retries) == (0, 0) for c in waiting)
    # and the invocation said so, once, with a metric
    [line] = [r for r in caplog.records if r.getMessage() == "time budget: batch stopped early"]
    assert (line.unstarted, line.unacknowledged) == (0, 25)
    assert _metric_total(capsys.readouterr().out, "ItemsReturnedUnacknowledged") == 25
    # When the unacknowledged items come back
    events_before = len(pipeline.events.published)
    took = _drain(slow)
    # Then they are acknowledged without being processed again, and the run closes exactly
    assert took and max(took) < 30
    assert sorted(provider.acknowledged()) == clients
    assert len(pipeline.events.published) == events_before == 50  # none published again
    assert all(len(pipeline.history(c, f"{c}-r{n:05d}")) == 1 for c in clients for n in range(1, 6))
    _run_closes_exactly(slow, run.run_id, records=50)


def test_an_unstarted_message_at_the_receive_limit_is_not_lost_to_the_redrive(slow: Any) -> None:
    # Given a client's page item already received as often as the queue's redrive allows
    pipeline, provider = slow.pipeline, slow.provider
    _seed(pipeline, clients=1, records=3)
    run = pipeline.plan(trigger="cli")
    for _ in range(REDRIVE_AFTER - 1):
        pipeline.release(pipeline.receive(1))
    [tired] = pipeline.receive(1)
    assert tired["Attributes"]["ApproximateReceiveCount"] == str(REDRIVE_AFTER)
    # When it comes in a batch whose time runs out before it (pages of 20 other slow clients)
    others = _seed(pipeline, clients=20, records=1, prefix="o")
    pipeline.plan(trigger="cli", client_ids=others)
    provider.get_seconds = 2.0
    batch = [*pipeline.receive_batch(20), tired]
    context = ClockedContext(clock=slow.clock)
    assert pipeline.invoke(batch, context) == []
    assert "c00" not in provider.fetched()
    # Then it is not dead-lettered on its next receive: a fresh copy of it is processed
    _drain(slow)
    assert pipeline.dead_letters() == []
    _run_closes_exactly_for(slow, run.run_id, client="c00", records=3)


def test_an_ack_that_cannot_get_a_token_in_time_is_not_sent_and_uses_no_receive(
    slow: Any, aws: Any
) -> None:
    # Given one client's records processed in a batch
    pipeline, provider = slow.pipeline, slow.provider
    _seed(pipeline, clients=1, records=4)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive_batch(50), ClockedContext(clock=slow.clock))
    records = pipeline.receive_batch(50)
    # and the provider's rate limit taken by others for the next 20 s
    aws.tables["ControlTable"].put_item(
        Item={"id": "ratelimit#external.test", "tat": int((slow.clock.now + 20) * 1000) + 40 * 50}
    )
    # When the batch settles: its ack may wait at most 3 s (10 s of budget, 7 for the attempt)
    assert pipeline.invoke(records, ClockedContext(clock=slow.clock)) == []
    # Then nothing was sent, nothing counted, and the items are back unused (receive count 1)
    assert provider.acknowledged() == []
    assert pipeline.view(run.run_id).clients[0].processed == 0
    queued = _queued(pipeline)
    assert len(queued) == 4
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in queued)
    assert all(isinstance(parse_work_item(m["Body"]), RecordItem) for m in queued)
    # When the limit is free again, the items are acknowledged and counted, processed once
    slow.clock.sleep(20)
    _drain(slow)
    assert provider.acknowledged() == ["c00"]
    assert all(len(pipeline.history("c00", f"c00-r{n:05d}")) == 1 for n in range(1, 5))
    _run_closes_exactly(slow, run.run_id, records=4)


# -- helpers ------------------------------------------------------------------------------


def _run_closes_exactly_for(slow: Any, run_id: str, client: str, records: int) -> None:
    [row] = [r for r in slow.pipeline.view(run_id).clients if r.client_id == client]
    assert (row.received, row.processed, row.failed, row.retries) == (records, records, 0, 0)
    assert len(slow.pipeline.external.acked[client]) == records


def _metric_total(output: str, name: str) -> float:
    """The sum of an EMF metric's values over the lines printed."""
    records = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return sum(sum(r[name]) if isinstance(r[name], list) else r[name] for r in records if name in r)


def _external(
    aws: Any,
    clock: FakeClock,
    answer: Any,
    bucket: TokenBucket | None = None,
) -> ExternalSystem:
    http = build_http_client(
        "http://external.test",
        TIMEOUT,
        ATTEMPTS,
        bucket or _bucket(aws, clock),
        transport=httpx.MockTransport(answer),
    )
    return ExternalSystem(http)


def _items() -> tuple[PageItem, RecordItem]:
    from jobkit.domain.envelope import new_page_item, new_record_item

    page = new_page_item(
        job_type="sync-completed-records",
        run_id="run-1",
        client_id="acme",
        group_id="north",
        correlation_id="run-1",
    )
    return page, new_record_item(page, "r1", {"id": "r1"})
