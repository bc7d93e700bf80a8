"""Unit tier: AWS is moto, in-process; the external system is a small in-memory fake."""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws

from jobkit.adapters.external import ExternalSystem
from tests.support import LambdaContext, table_definitions

if TYPE_CHECKING:
    from tests.unit.pipeline import Pipeline

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_SERVICE_NAME="jobkit",
    POWERTOOLS_METRICS_NAMESPACE="jobkit",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_DEV="false",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

# Property tests assert behaviour, never time: Hypothesis's wall-clock checks (a deadline per
# example, "input generation is slow") failed a fresh-clone run on a busy 2-core machine.
# Speed is measured by `make bench`.
settings.register_profile("jobkit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("jobkit")


@dataclass
class Aws:
    tables: dict[str, Any]
    sqs: Any
    work_queue_url: str
    dlq_url: str
    backfill_queue_url: str = ""


@pytest.fixture
def aws() -> Iterator[Aws]:
    from jobkit.adapters import aws as clients

    with mock_aws():
        # Every client as the functions get them (jobkit.adapters.aws), made inside this mock.
        for factory in (
            clients.dynamodb_table_client,
            clients.dynamodb_client,
            clients.sqs_client,
            clients.events_client,
            clients.secrets_client,
            clients.lambda_client,
            clients.scheduler_client,
        ):
            factory.cache_clear()
        tables = {}
        for logical_id, definition in table_definitions().items():
            clients.dynamodb_table_client().create_table(**definition)
            tables[logical_id] = clients.dynamodb_table(definition["TableName"])
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
        work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
        backfill_url = sqs.create_queue(QueueName="backfill")["QueueUrl"]
        yield Aws(tables, sqs, work_url, dlq_url, backfill_url)


@pytest.fixture(autouse=True)
def fresh_circuit_counters() -> None:
    """Powertools counts a circuit's failures per process: each test starts from none."""
    from aws_lambda_powertools.utilities.circuit_breaker import base

    for counters in (base._LOCAL_FAILURES, base._LOCAL_SUCCESSES, base._LAST_OBSERVED_STATE):
        counters.clear()


@pytest.fixture
def provider() -> Iterator[httpx.Client]:
    """The real fake external system on a loopback port; the client talks to its admin API."""
    from external_system import start_server

    server, thread = start_server("127.0.0.1", 0)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0) as admin:
        yield admin
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@dataclass
class FakeExternalSystem(ExternalSystem):
    """Pages of completed records per client, acks remembered, failures on demand.

    Only ``get``/``post`` are faked: ``get_as``/``post_as`` are the real ones on top.
    """

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acked: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    page_size: int = 10
    fail_acks: int = 0  # the next N ack calls fail
    fail_gets: int = 0
    down: set[str] = field(default_factory=set)  # clients whose endpoint fails every call
    calls: list[str] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)  # each GET's parameters

    def add_client(
        self, client_id: str, group_id: str, count: int, poison: tuple[str, ...] = ()
    ) -> list[str]:
        ids = [f"{client_id}-r{n:05d}" for n in range(1, count + 1)]
        self.records[client_id] = [
            {
                "id": rid,
                "client_id": client_id,
                "group_id": group_id,
                "version": "not-a-number" if rid in poison else 1,
                "status": "COMPLETED",
                "completed_at": "garbage" if rid in poison else "2026-11-20T10:00:00Z",
                "pending_items": [f"{rid}-p1"],
            }
            for rid in ids
        ]
        return ids

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        from jobkit.domain.errors import ExternalUnavailableError

        self.calls.append(f"GET {path}")
        self.queries.append(dict(params or {}))
        if path.split("/")[3] in self.down:
            raise ExternalUnavailableError(f"GET {path}: HTTP 503 after retries")
        if self.fail_gets:
            self.fail_gets -= 1
            raise ExternalUnavailableError(f"GET {path}: HTTP 503 after retries")
        client_id = path.split("/")[3]
        acked = {rid for rid, _ in self.acked.get(client_id, [])}
        cursor = (params or {}).get("cursor") or ""
        rows = [
            r
            for r in self.records[client_id]
            if r["id"] > cursor and _served(r, acked, params or {})
        ]
        page = rows[: self.page_size]
        more = len(rows) > self.page_size
        return {"records": page, "next_cursor": page[-1]["id"] if more else None}

    def post(self, path: str, body: Any) -> Any:
        from jobkit.domain.errors import ExternalUnavailableError

        self.calls.append(f"POST {path}")
        if path.split("/")[3] in self.down:
            raise ExternalUnavailableError(f"POST {path}: HTTP 503 after retries")
        if self.fail_acks:
            self.fail_acks -= 1
            raise ExternalUnavailableError(f"POST {path}: HTTP 503 after retries")
        client_id = path.split("/")[3]
        acks = [(a["record_id"], a["version"]) for a in body["acks"]]
        self.acked.setdefault(client_id, []).extend(acks)
        return {"acknowledged": [rid for rid, _ in acks], "unknown": []}


def _served(record: dict[str, Any], acked: set[str], params: dict[str, Any]) -> bool:
    """As the external system serves: records not acknowledged, or, for a window query (a
    backfill's), those completed in the window, acknowledged or not."""
    if "completed_from" not in params:
        return record["id"] not in acked
    try:
        completed = datetime.fromisoformat(record["completed_at"])
    except ValueError:
        return True  # a poison record's garbage time: served, and dead-lettered downstream
    start = datetime.fromisoformat(params["completed_from"])
    return start <= completed < datetime.fromisoformat(params["completed_to"])


@pytest.fixture
def external() -> FakeExternalSystem:
    return FakeExternalSystem()


@pytest.fixture
def pipeline(aws: Aws, external: FakeExternalSystem) -> "Pipeline":
    from tests.unit.pipeline import Pipeline

    return Pipeline(aws, external)
