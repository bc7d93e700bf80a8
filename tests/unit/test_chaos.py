"""The chaos faults in-process: duplicated work messages and crashes between the transition
and its acknowledgement; every effect still happens exactly once and every run closes."""

import random
from decimal import Decimal
from typing import Any

from jobkit.runs.models import RunStatus
from jobkit.tooling.chaos import CHAOS_KEY
from tests.unit.pipeline import Pipeline


def test_duplicates_and_crashes_after_commit_change_no_total(aws: Any, external: Any) -> None:
    random.seed(7)
    pipeline = Pipeline(aws, external, chaos=True)
    ids = [rid for n in range(3) for rid in pipeline.seed(f"client{n}", count=20)]
    aws.tables["ControlTable"].put_item(
        Item={
            **CHAOS_KEY,
            "duplicate_rate": Decimal("0.3"),
            "crash_after_commit_rate": Decimal("0.2"),
        }
    )
    run = pipeline.plan(trigger="cli")
    delivery = pipeline.drain_with_retries()

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed) == (60, 60)
    assert view.header.received == view.header.processed + view.header.skipped
    assert delivery.failures  # some items did crash and were retried
    assert all(len(pipeline.history(rid.rsplit("-", 1)[0], rid)) == 1 for rid in ids)
    acked = [rid for acks in external.acked.values() for rid, _ in acks]
    assert sorted(set(acked)) == sorted(ids)
    # One event per transition, at least once: a message retried replays its event with the
    # same id (subscribers deduplicate on it), never a second event for the same transition
    published = pipeline.events.published
    assert len({event.event_id for event in published}) == 60
    assert len({event.model_dump_json() for event in published}) == 60
