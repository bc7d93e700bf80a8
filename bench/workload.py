"""The bench's runs on the local stack: clients seeded, a job run to its close, the
external system's count of the calls it answered."""

import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from bench.poller import AwsSizedPoller
from jobkit.adapters.config import ClientConfig
from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import FINAL_STATUSES
from jobkit_cli.seed import external_admin, seed_client
from jobkit_cli.stack import Stack

REAL, NOOP = "sync-completed-records", "bench-noop"
CLIENTS = 10
SIZES = [int(n) for n in os.environ.get("JOBKIT_BENCH_SIZES", "1000,10000,30000").split(",")]


@dataclass
class Run:
    job: str
    run_id: str
    records: int
    seconds: float
    started: float
    ended: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


def seed(stack: Stack, job: str, clients: int, records: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    ids = [f"bench{tag}-{n:02d}" for n in range(clients)]
    for client_id in ids:
        seed_client(stack, job_type=job, client_id=client_id, group_id="north", records=records)
    return ids


def seed_backfill_clients(stack: Stack, job: str, records: int) -> list[str]:
    """CLIENTS clients sharing ``records`` no run has processed, for a backfill to replay."""
    return seed(stack, job, CLIENTS, records // CLIENTS)


def configure_clients(stack: Stack, job: str, client_ids: list[str], enabled: bool = True) -> None:
    """Config rows only (no records on the external system), in batches."""
    with stack.table("ConfigTableName").batch_writer() as batch:
        for client_id in client_ids:
            config = ClientConfig(
                job_type=job, client_id=client_id, group_id="north", enabled=enabled
            )
            batch.put_item(Item=config.to_item())


def forget_clients(stack: Stack, job: str, client_ids: list[str]) -> None:
    """The bench's config rows go when it is done with them: no schedule plans them again."""
    with stack.table("ConfigTableName").batch_writer() as batch:
        for client_id in client_ids:
            batch.delete_item(Key={"job_type": job, "client_id": client_id})


def run_job(stack: Stack, job: str, records: int, poller: AwsSizedPoller | None = None) -> Run:
    """Seed CLIENTS clients sharing ``records``, plan a run of ``job``, wait until it closes
    (fed by ``poller`` when given, else by the stack's own event source)."""
    client_ids = seed(stack, job, CLIENTS, records // CLIENTS)
    started = time.time()
    planned = stack.invoke(stack.planners[job], {"trigger": "cli", "client_ids": client_ids})
    runs = open_ledger(stack.table("RunsTableName")).queries

    def closed() -> bool:
        # The header alone (one GetItem): a Query of the run's rows, every second, costs
        # MiniStack time in proportion to the run's size and slowed the run it measured.
        header = runs.header(planned["run_id"])
        return header is not None and header.status in FINAL_STATUSES

    if poller is not None:
        poller.run_until(closed)
    while not closed():
        time.sleep(1.0)
    forget_clients(stack, job, client_ids)
    header = runs.header(planned["run_id"])
    assert header is not None
    assert header.finished_at is not None
    seconds = (header.finished_at - header.created_at).total_seconds()
    return Run(job, header.run_id, header.received, seconds, started, time.time())


def external_calls(stack: Stack) -> Counter[str]:
    """The fake external system's own count of the calls it answered, by route."""
    with external_admin(stack) as admin:
        stats = admin.get("/_admin/stats").json()["requests"]
    return Counter({route: sum(by_status.values()) for route, by_status in stats.items()})
