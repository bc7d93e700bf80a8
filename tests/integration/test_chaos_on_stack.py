"""The chaos test: the guarantees under faults, duplicates and crashes, on the deployed stack.

The external system injects 5% 5xx, 2% timeouts and 1% 429, and 1% of the records are poison;
the stack's chaos switch (Control table, local stack only) sends 10% of the work messages
twice and crashes the processor after 3% of the transitions, before their acknowledgement.
Another 1% of the records are unknown to the platform when the run meets them (dead-lettered
as RecordNotFoundError) and are created afterwards, as an operator would fix the cause.
Afterwards every record's transition is written exactly once, acknowledgements equal processed
records, the run's totals add up, every dead letter carries its envelope and reason, and the
non-poison dead letters, redriven, are processed once.

Size: JOBKIT_CHAOS_CLIENTS x JOBKIT_CHAOS_RECORDS (20 x 50 in `make test`; `make chaos` runs
25 x 200 = 5,000 records). The figures are printed as one JSON line starting `chaos figures`.
"""

import json
import os
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from jobkit.adapters.records import STATE, record_pk
from jobkit.domain.envelope import RecordItem, parse_work_item
from jobkit.runs.queries import RunQueries
from jobkit.tooling.chaos import CHAOS_KEY
from jobkit_cli.dlq import Filter, redrive
from jobkit_cli.runs_view import peek_dead_letters
from jobkit_cli.seed import record_ids, seed_client
from jobkit_cli.stack import Stack
from tests.integration.conftest import JOB, acks, fire, wait_for_run, wait_until

pytestmark = pytest.mark.integration

CLIENTS = int(os.environ.get("JOBKIT_CHAOS_CLIENTS", "20"))
RECORDS = int(os.environ.get("JOBKIT_CHAOS_RECORDS", "50"))
POISON_EVERY = 100  # 1% of the records
LATE_OFFSET = 50  # another 1%: unknown to the platform until after the run


def _history_rows(stack: Stack, client_id: str, record_id: str) -> int:
    response = stack.table("RecordsTableName").query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": record_pk(client_id, record_id), ":h": "HIST#"},
        Select="COUNT",
    )
    return int(response["Count"])


def _assert_history_once(stack: Stack, clients: list[str], poison_ids: set[str]) -> None:
    for client_id in clients:
        for record_id in record_ids(client_id, RECORDS):
            expected = 0 if record_id in poison_ids else 1
            assert _history_rows(stack, client_id, record_id) == expected, record_id


def _seed(
    stack: Stack, clients: list[str]
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Clients with records; returns the poison ids per client, and the rows of the records
    removed from the platform (to be put back after the run)."""
    poison: dict[str, list[str]] = {}
    late: dict[str, dict[str, Any]] = {}  # record id -> its platform row, put back later
    records = stack.table("RecordsTableName")
    for index, client_id in enumerate(clients):
        ids = record_ids(client_id, RECORDS)
        position = {rid: index * RECORDS + n for n, rid in enumerate(ids, 1)}
        poison[client_id] = [rid for rid in ids if position[rid] % POISON_EVERY == 0]
        seed_client(
            stack,
            job_type=JOB,
            client_id=client_id,
            group_id="north",
            records=RECORDS,
            poison=poison[client_id],
        )
        for rid in ids:
            if position[rid] % POISON_EVERY == LATE_OFFSET:
                key = {"pk": record_pk(client_id, rid), "sk": STATE}
                late[rid] = records.get_item(Key=key)["Item"]
                records.delete_item(Key=key)
    return poison, late


def test_guarantees_hold_under_faults_duplicates_and_crashes(
    stack: Stack, runs: RunQueries, external: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:6]
    clients = [f"chaos{tag}-{n:02d}" for n in range(CLIENTS)]
    poison, late = _seed(stack, clients)
    records = stack.table("RecordsTableName")
    external.put(
        "/_admin/faults",
        json={
            "seed": 11,
            "error_rate": 0.05,
            "timeout_rate": 0.02,
            "timeout_seconds": 3,  # past the stack's 2 s client timeout
            "throttle_rate": 0.01,
            "clients": clients,
        },
    ).raise_for_status()
    control = stack.table("ControlTableName")
    control.put_item(
        Item={
            **CHAOS_KEY,
            "duplicate_rate": Decimal("0.10"),
            "crash_after_commit_rate": Decimal("0.03"),
        }
    )
    injected_before = external.get("/_admin/stats").json()["injected"]
    started = time.monotonic()
    try:
        planned = fire(stack, trigger="cli", client_ids=clients)
        view = wait_for_run(runs, planned["run_id"], timeout=900)
    finally:
        control.delete_item(Key=CHAOS_KEY)
        external.put("/_admin/faults", json={}).raise_for_status()
    duration = time.monotonic() - started
    header = view.header
    run_id = planned["run_id"]
    total, poisoned = CLIENTS * RECORDS, sum(len(p) for p in poison.values())

    # The run's totals add up: processed + dead-lettered + skipped = received.
    assert header.received == total
    assert header.processed + header.dead_lettered + header.skipped == header.received
    assert header.failed == header.dead_lettered >= poisoned + len(late)

    # Every dead letter carries its envelope and reason; the poison ones say why.
    letters = [d for d in peek_dead_letters(stack) if d.body.get("run_id") == run_id]
    # A duplicated message of a poison record is dead-lettered twice, counted once.
    assert len({d.body["envelope_id"] for d in letters}) == header.dead_lettered
    for letter in letters:
        assert isinstance(parse_work_item(json.dumps(letter.body)), RecordItem)
        assert letter.attributes["reason"] and letter.attributes["error_type"]
    poison_ids = {rid for ids in poison.values() for rid in ids}
    assert {
        d.body["record_id"] for d in letters if d.attributes["error_type"] == "InvalidPayloadError"
    } == poison_ids

    assert {
        d.body["record_id"] for d in letters if d.attributes["error_type"] == "RecordNotFoundError"
    } == set(late)

    # The operator creates the missing records; redriving the non-poison dead letters then
    # processes them once.
    for row in late.values():
        records.put_item(Item=row)
    retriable = [d for d in letters if d.attributes["error_type"] != "InvalidPayloadError"]
    for letter in retriable:
        redrive(stack, Filter(message_id=letter.message_id))
    # (a duplicated message may have been dead-lettered twice: one envelope, one outcome)
    expected_processed = header.processed + len({d.body["envelope_id"] for d in retriable})

    def redriven() -> bool:
        live = runs.view(run_id)
        return live is not None and sum(c.processed for c in live.clients) == expected_processed

    wait_until(redriven, timeout=180, what="the redriven dead letters to be processed")
    final = runs.view(run_id)
    assert final is not None

    # Every record's transition is written exactly once; poison records have none.
    _assert_history_once(stack, clients, poison_ids)
    # Acknowledgements equal processed records exactly, client by client.
    for client_row in final.clients:
        assert acks(external, client_row.client_id) == client_row.processed, client_row.client_id

    injected = {
        fault: count - injected_before.get(fault, 0)
        for fault, count in external.get("/_admin/stats").json()["injected"].items()
    }
    print(
        "chaos figures",
        json.dumps(
            {
                "clients": CLIENTS,
                "records": total,
                "poison": poisoned,
                "unknown_until_fixed": len(late),
                "received": header.received,
                "processed": header.processed,
                "skipped": header.skipped,
                "dead_lettered": header.dead_lettered,
                "item_retries": header.retries,
                "dead_letter_messages": len(letters),
                "redriven": len(retriable),
                "processed_after_redrive": expected_processed,
                "history_rows_per_record": 1,
                "acks_equal_processed": True,
                "injected_by_external_system": injected,
                "run_seconds": round(duration, 1),
            }
        ),
    )
