"""Dead letters on the real stack: listed with their reason, redriven once, counted again."""

from typing import Any

import pytest

from jobkit.adapters.records import STATE, record_pk
from jobkit.runs.models import RunStatus
from jobkit.runs.queries import RunQueries
from jobkit_cli.dlq import Filter, redrive
from jobkit_cli.runs_view import peek_dead_letters
from jobkit_cli.stack import Stack
from tests.integration.conftest import fire, wait_for_run, wait_until

pytestmark = pytest.mark.integration


def test_redriven_item_is_processed_once_and_the_run_counts_follow(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
) -> None:
    # Given a record the platform does not know: dead-lettered at once with its reason
    client = new_client("redrive", records=4)
    missing = f"{client}-r00003"
    records = stack.table("RecordsTableName")
    records.delete_item(Key={"pk": record_pk(client, missing), "sk": STATE})
    run_id = fire(stack, trigger="cli", client_ids=[client])["run_id"]
    view = wait_for_run(runs, run_id)
    assert (view.header.status, view.header.processed, view.header.failed) == (
        RunStatus.COMPLETED_WITH_ERRORS,
        3,
        1,
    )
    [letter] = [d for d in peek_dead_letters(stack) if d.body.get("client_id") == client]
    assert letter.attributes["error_type"] == "RecordNotFoundError"
    # When the cause is fixed and the client's dead letters are redriven
    records.put_item(
        Item={"pk": record_pk(client, missing), "sk": STATE, "status": "IN_PROGRESS", "version": 0}
    )
    assert redrive(stack, Filter(client_id=client)) == 1

    # Then the record is processed once and the run counts it as processed, not failed
    def recounted() -> bool:
        header = runs.header(run_id)
        return header is not None and header.failed == 0

    wait_until(recounted, what="the redriven item to be counted")
    header = runs.header(run_id)
    assert header is not None and (header.processed, header.received) == (4, 4)
    history = records.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": record_pk(client, missing), ":h": "HIST#"},
    )["Items"]
    assert len(history) == 1
    assert not [d for d in peek_dead_letters(stack) if d.body.get("client_id") == client]
