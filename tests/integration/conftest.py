"""Integration tier: template.yaml deployed to MiniStack, the external system over HTTP.

The stack is brought up once per session (or a running one reused) and whatever this session
started is stopped at the end, even when tests fail.
"""

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jobkit.runs.models import RunView
from jobkit.runs.queries import RunQueries
from jobkit_cli import localstack
from jobkit_cli.logs import log_events
from jobkit_cli.runs_view import is_final, run_store
from jobkit_cli.seed import seed_client
from jobkit_cli.stack import Stack, load_local_state

JOB = "sync-completed-records"

AT_FINISH = "at_finish"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{AT_FINISH}: the session-finish stage: runs after every other test of the session, "
        "to check what the whole run left behind (its logs, the requests its functions made)",
    )


@pytest.hookimpl(trylast=True)  # after -k/-m deselection and any other reordering
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The session-finish stage: tests marked ``at_finish`` run last, in their collected order,
    whatever their files are called; every other test keeps its place."""
    items.sort(key=lambda item: item.get_closest_marker(AT_FINISH) is not None)


_DEPLOYED_FROM_MS: list[int] = []


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    already_running = load_local_state() is not None
    try:
        _DEPLOYED_FROM_MS.append(int(time.time() * 1000))
        localstack.up()
        yield Stack.current()
    finally:
        if not already_running:
            localstack.stop()


@pytest.fixture(scope="session")
def deployed_from_ms(stack: Stack) -> int:
    """When this session's deployment began: a reused stack keeps the log lines of earlier
    sessions, written by the code deployed then."""
    return _DEPLOYED_FROM_MS[0]


@pytest.fixture
def external(stack: Stack) -> Iterator[httpx.Client]:
    """The external system's admin API; faults are cleared after every test."""
    assert stack.external_url
    with httpx.Client(base_url=stack.external_url, timeout=10.0) as client:
        yield client
        client.put("/_admin/faults", json={}).raise_for_status()


@pytest.fixture
def new_client(stack: Stack) -> Callable[..., str]:
    """Seed a client with a unique id on both sides; returns its id."""

    def make(name: str = "client", records: int = 10, **kwargs: Any) -> str:
        client_id = f"{name}-{uuid.uuid4().hex[:8]}"
        kwargs.setdefault("group_id", "north")
        seed_client(stack, job_type=JOB, client_id=client_id, records=records, **kwargs)
        return client_id

    return make


@pytest.fixture
def runs(stack: Stack) -> RunQueries:
    return run_store(stack)


def fire(stack: Stack, **payload: Any) -> dict[str, Any]:
    """Invoke the job's planner with the payload its schedule (or the CLI) sends."""
    return stack.invoke(stack.planners[JOB], payload)


def unused_schedule_time() -> datetime:
    """A scheduled time no other test (or earlier session on this stack) has used, in the last
    four months: a query counts its look-back (``days``) from it, and the fake external
    system's records completed just before they were seeded."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=secrets.randbelow(10**7))


def wait_for_run(runs: RunQueries, run_id: str, timeout: float = 240.0) -> RunView:
    deadline = time.monotonic() + timeout
    while True:
        view = runs.view(run_id)
        if view is not None and is_final(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not final after {timeout}s: {view}")
        time.sleep(1.0)


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1.0)


def acks(external: httpx.Client, client_id: str) -> int:
    body = external.get("/_admin/acks", params={"client_id": client_id}).json()
    return int(body["clients"].get(client_id, {}).get("acked", 0))


def log_messages(logs: Any, group: str) -> list[str]:
    return [event["message"] for event in log_events(logs, group)]


def log_lines(stack: Stack, function_output: str, contains: str) -> list[str]:
    """Lines a function logged (CloudWatch Logs on the stack) that contain a text."""
    group = f"/aws/lambda/{stack.outputs[function_output]}"
    return [line for line in log_messages(stack.client("logs"), group) if contains in line]


@pytest.fixture(scope="session")
def api_base(stack: Stack) -> str:
    from jobkit_cli.api_client import api_url

    return api_url(stack)


@pytest.fixture(scope="session")
def issued_keys() -> list[str]:
    """Every key the suite issues, so the session-finish stage can prove none of them reached
    a log."""
    return []


@pytest.fixture
def make_key(stack: Stack, issued_keys: list[str]) -> Callable[..., str]:
    """Create a real key in the Keys table; returns the plaintext (never printed)."""
    from datetime import datetime

    from jobkit.adapters.keys import KeyStore, Scope

    store = KeyStore(stack.table("KeysTableName"))

    def make(
        *scopes: Scope,
        jobs: set[str] | None = None,
        clients: set[str] | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        _, plaintext = store.create(
            "test", set(scopes), job_types=jobs, clients=clients, expires_at=expires_at
        )
        issued_keys.append(plaintext)
        return plaintext

    return make
