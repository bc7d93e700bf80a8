"""Outcome packs: what is packed comes back as it was, and their union settles each item once."""

from jobkit.runs.models import ItemOutcome, Outcome
from jobkit.runs.outcome_packs import pack_row, settled, totals, unpack

JOB = "sync-completed-records"
AT = "2026-12-03T00:00:0"  # + a second


def test_an_outcome_comes_back_from_its_pack_as_it_went_in_whatever_its_ids_hold() -> None:
    outcomes = [
        ItemOutcome("e1", Outcome.PROCESSED, "r1", f"{JOB}#acme#r1#7"),
        ItemOutcome("e2", Outcome.FAILED, "r\x1f2", f"{JOB}#acme#r\x1f2#1", "bad\x1fdata", True),
        ItemOutcome("e3", Outcome.SKIPPED, "r3", "a key of another shape", "duplicate"),
    ]

    row = pack_row("run-1", "acme", JOB, outcomes, AT + "0")
    items = unpack(row)

    assert [
        (i.envelope_id, i.outcome, i.record_id, i.item_key, i.reason, i.dead_lettered)
        for i in items
    ] == [
        (o.envelope_id, o.outcome, o.record_id, o.item_key, o.reason, o.dead_lettered)
        for o in outcomes
    ]
    assert {i.client_id for i in items} == {"acme"}


def test_the_same_outcomes_make_the_same_pack_key_in_any_order() -> None:
    a = ItemOutcome("e1", Outcome.PROCESSED, "r1", "k1")
    b = ItemOutcome("e2", Outcome.PROCESSED, "r2", "k2")

    first = pack_row("run-1", "acme", JOB, [a, b], "t")["sk"]

    assert first == pack_row("run-1", "acme", JOB, [b, a], "t")["sk"]
    assert first != pack_row("run-1", "acme", JOB, [a], "t")["sk"]
    assert first.startswith("ITEM#acme#")


def test_packs_that_repeat_an_item_settle_it_once_and_a_redrive_beats_its_failure() -> None:
    failed = ItemOutcome("e1", Outcome.FAILED, "r1", "k1", "bad", dead_lettered=True)
    done = ItemOutcome("e2", Outcome.PROCESSED, "r2", "k2")
    redriven = ItemOutcome("e1", Outcome.PROCESSED, "r1", "k1")
    packs = [
        pack_row("run-1", "acme", JOB, [failed, done], f"{AT}1"),
        pack_row("run-1", "acme", JOB, [done], f"{AT}2"),  # a batch counted twice
        pack_row("run-1", "acme", JOB, [redriven], f"{AT}3"),
    ]

    outcomes = settled(packs)

    assert sorted(outcomes) == ["e1", "e2"]
    assert outcomes["e1"].outcome is Outcome.PROCESSED and outcomes["e1"].dead_lettered
    assert totals(outcomes.values()) == {
        "processed": 2,
        "skipped": 0,
        "failed": 0,
        "dead_lettered": 1,
    }


def test_a_row_of_the_layout_before_packs_reads_as_a_pack_of_one() -> None:
    old = {
        "run_id": "run-1",
        "sk": "ITEM#acme#e9",
        "client_id": "acme",
        "record_id": "r9",
        "item_key": f"{JOB}#acme#r9#1",
        "outcome": "failed",
        "reason": "bad",
        "dead_lettered": True,
        "at": AT + "0",
    }
    newer = pack_row(
        "run-1", "acme", JOB, [ItemOutcome("e9", Outcome.PROCESSED, "r9", "k")], AT + "1"
    )

    outcomes = settled([old, newer])

    assert [(i.envelope_id, i.outcome, i.dead_lettered) for i in outcomes.values()] == [
        ("e9", Outcome.PROCESSED, True)
    ]
