"""`jobkit seed`'s decisions, in-process: the faults it accepts, which records it poisons, and
which platform record a job's rules expect for each fake record."""

import re
from typing import Any

import pytest

from jobkit.adapters.config import ClientConfig
from jobkit_cli.job_seed import SeedRefused, expected_status, parse_faults, poison_ids
from jobs import JOBS

CLIENT = ClientConfig(job_type="sync-completed-records", client_id="acme", group_id="north")


def _record(**changes: Any) -> dict[str, Any]:
    return {
        "id": "acme-r00001",
        "client_id": "acme",
        "group_id": "north",
        "version": 1,
        "status": "COMPLETED",
        "completed_at": "2026-11-20T10:00:00Z",
        "pending_items": [],
        **changes,
    }


def test_faults_are_read_by_their_names() -> None:
    assert parse_faults("5xx=0.05, latency-ms=200,429=0.1") == {
        "5xx": 0.05,
        "latency-ms": 200.0,
        "429": 0.1,
    }
    assert parse_faults(None) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("404=1", "unknown fault '404' (faults: 5xx, timeout, 429, ack-5xx, latency-ms)"),
        ("5xx=lots", "5xx='lots' is not a number"),
        ("5xx=2", "error_rate: Input should be less than or equal to 1"),
    ],
)
def test_a_wrong_fault_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(SeedRefused, match=re.escape(message)):
        parse_faults(text)


def test_poison_is_spread_over_the_records_and_bounded_by_them() -> None:
    ids = [f"r{n}" for n in range(10)]
    assert poison_ids(ids, 0) == []
    assert poison_ids(ids, 2) == ["r0", "r5"]
    with pytest.raises(SeedRefused, match="--poison 11: more than the 10 records seeded"):
        poison_ids(ids, 11)


def test_a_transition_from_existing_records_expects_one_in_its_first_status() -> None:
    # sync-completed-records moves OPEN, PENDING or IN_PROGRESS records to COMPLETED
    assert expected_status(JOBS["sync-completed-records"], CLIENT, _record()) == "IN_PROGRESS"


def test_no_platform_record_where_the_rules_create_skip_or_would_dead_letter() -> None:
    job = JOBS["sync-completed-records"]
    assert expected_status(job, CLIENT, _record(group_id="south")) is None  # skipped
    assert expected_status(job, CLIENT, _record(version="not-a-number")) is None  # poison
    contact = {"id": "bob-c00001", "client_id": "bob", "version": 3, "name": "B", "email": "b@x"}
    contacts = CLIENT.model_copy(update={"job_type": "sync-contacts", "client_id": "bob"})
    assert expected_status(JOBS["sync-contacts"], contacts, contact | {"phone": "1"}) is None


def test_seeding_is_refused_on_a_stack_that_is_not_local() -> None:
    from jobkit_cli.job_seed import seed_job_client
    from jobkit_cli.stack import Stack

    on_aws = Stack("jobkit", "eu-west-1")
    with pytest.raises(SeedRefused, match=r"local stack only \(stack jobkit is on AWS\)"):
        seed_job_client(on_aws, JOBS["sync-completed-records"], CLIENT, records=5)
