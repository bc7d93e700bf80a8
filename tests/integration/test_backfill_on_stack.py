"""Backfills on the local stack, through the API Gateway and the key authorizer, the planner
and the processor Lambdas on the backfill lane, against the fake external system over HTTP:
a replay touches only what is missing, counts it first, and never disturbs the live runs."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from boto3.dynamodb.conditions import Key
from typer.testing import CliRunner

from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.keys import Scope
from jobkit.adapters.records import record_pk
from jobkit.runs.models import ItemRow, RunView
from jobkit.runs.queries import RunQueries
from jobkit_cli.main import app
from jobkit_cli.seed import record_ids, write_platform_records
from jobkit_cli.stack import Stack
from tests.integration.conftest import JOB, fire, unused_schedule_time, wait_for_run
from tests.support import add_records

pytestmark = pytest.mark.integration


@pytest.fixture
def api(api_base: str, make_key: Callable[..., str]) -> Iterator[httpx.Client]:
    key = make_key(Scope.TRIGGER, Scope.READ)
    with httpx.Client(base_url=api_base, headers={"x-api-key": key}, timeout=30.0) as client:
        yield client


def _window(client_id: str) -> dict[str, Any]:
    """A window covering every record seeded for the test (they completed in the seconds
    before their seeding) and nothing in the future."""
    now = datetime.now(UTC)
    return {
        "clientIds": [client_id],
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": now.isoformat(),
    }


def _dry_run(api: httpx.Client, client_id: str, **body: Any) -> dict[str, Any]:
    """The dry run's row of one client, over the last hour unless ``body`` says."""
    answer = api.post(f"/jobs/{JOB}/backfills", json={**_window(client_id), **body, "dryRun": True})
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["clients"]
    return dict(row)


def _backfill(api: httpx.Client, runs: RunQueries, client_id: str, **body: Any) -> RunView:
    """A backfill of one client, over the last hour unless ``body`` says, once it is final."""
    answer = api.post(f"/jobs/{JOB}/backfills", json={**_window(client_id), **body})
    assert answer.status_code == 202, answer.text
    assert answer.json()["trigger"] == "backfill"
    return wait_for_run(runs, answer.json()["run_id"])


def _history_rows(stack: Stack, client_id: str, ids: list[str]) -> int:
    table = stack.table("RecordsTableName")
    return sum(
        len(table.query(KeyConditionExpression=Key("pk").eq(record_pk(client_id, rid)))["Items"])
        - 1  # the state row
        for rid in ids
    )


def _acks(external: httpx.Client, client_id: str) -> tuple[int, int]:
    """(records acknowledged, duplicate acknowledgements), as the external system saw them."""
    body = external.get("/_admin/acks", params={"client_id": client_id}).json()
    seen = body["clients"].get(client_id, {})
    return int(seen.get("acked", 0)), int(seen.get("duplicate_acks", 0))


def _add_records(stack: Stack, client_id: str, count: int) -> list[str]:
    assert stack.external_url
    total = add_records(stack.external_url, client_id, count)["records"]
    ids = record_ids(client_id, total)[-count:]
    write_platform_records(stack, client_id, ids)
    return ids


def _items(runs: RunQueries, run_id: str) -> list[ItemRow]:
    rows, _ = runs.items_page(run_id, None, 500, None)
    return rows


def test_a_backfill_replays_only_what_is_missing_and_counts_it_first(
    stack: Stack,
    runs: RunQueries,
    api: httpx.Client,
    external: httpx.Client,
    new_client: Callable[..., str],
) -> None:
    # 1. A client's records are processed by a scheduled run
    client = new_client("backfill", records=6)
    ids = record_ids(client, 6)
    live = fire(
        stack,
        trigger="schedule",
        scheduled_time=unused_schedule_time().isoformat(),
        client_ids=[client],
    )
    scheduled = wait_for_run(runs, live["run_id"])
    assert (scheduled.header.processed, _acks(external, client)) == (6, (6, 0))
    history = _history_rows(stack, client, ids)
    # 2. A dry run over a window covering them: all processed, nothing to do
    counted = _dry_run(api, client)
    assert (counted["in_window"], counted["already_processed"], counted["would_process"]) == (
        6,
        6,
        0,
    )
    # 3. A missing backfill over it writes no history row and sends no duplicate ack
    replay = _backfill(api, runs, client)
    assert (replay.header.received, replay.header.processed, replay.header.skipped) == (6, 0, 6)
    assert _history_rows(stack, client, ids) == history
    assert _acks(external, client) == (6, 0)
    # 4. New records appear in the window: the dry run counts exactly them, and a missing
    #    backfill processes exactly them, once each
    new = _add_records(stack, client, 3)
    counted = _dry_run(api, client)
    assert (counted["in_window"], counted["would_process"]) == (9, 3)
    replay = _backfill(api, runs, client)
    processed = [
        row.record_id
        for row in _items(runs, replay.header.run_id)
        if row.outcome.value == "processed"
    ]
    assert sorted(processed) == new
    assert _acks(external, client) == (9, 0)
    assert _history_rows(stack, client, ids + new) == history + 3


def test_a_backfill_and_a_scheduled_run_of_one_client_process_each_record_once(
    stack: Stack,
    runs: RunQueries,
    api: httpx.Client,
    new_client: Callable[..., str],
) -> None:
    # 5. Given a client with records no run has seen
    client = new_client("concurrent", records=40, page_size=10)
    configs = ConfigStore(stack.table("ConfigTableName"))
    cursor = configs.get(JOB, client).cursor
    # When a scheduled run and a backfill of the same window run at once
    live = fire(
        stack,
        trigger="schedule",
        scheduled_time=unused_schedule_time().isoformat(),
        client_ids=[client],
    )
    accepted = api.post(f"/jobs/{JOB}/backfills", json=_window(client))
    assert accepted.status_code == 202, accepted.text
    scheduled = wait_for_run(runs, live["run_id"])
    replay = wait_for_run(runs, accepted.json()["run_id"])
    # Then each record was processed once, by one of them
    processed = [
        row.record_id
        for run in (scheduled, replay)
        for row in _items(runs, run.header.run_id)
        if row.outcome.value == "processed"
    ]
    assert sorted(processed) == record_ids(client, 40)
    assert _history_rows(stack, client, record_ids(client, 40)) == 40
    # And the live cursor is where the scheduled run left it
    assert configs.get(JOB, client).cursor == cursor


def test_mode_all_is_one_generation_per_request(
    stack: Stack,
    runs: RunQueries,
    api: httpx.Client,
    new_client: Callable[..., str],
) -> None:
    # 6. Given a client whose records were processed, and one set back by hand since
    client = new_client("generation", records=4)
    ids = record_ids(client, 4)
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])
    stack.table("RecordsTableName").update_item(
        Key={"pk": record_pk(client, ids[0]), "sk": "STATE"},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "OPEN"},
    )
    history = _history_rows(stack, client, ids)
    # When a mode all backfill runs: one new generation of work per record
    body = {**_window(client), "mode": "all", "requestId": f"regen-{client}"}
    assert _dry_run(api, client, **body)["would_process"] == 4
    first = _backfill(api, runs, client, **body)
    items = _items(runs, first.header.run_id)
    assert len(items) == 4
    assert all(row.item_key.endswith(f"#g:{first.header.run_id}") for row in items)
    # The rules decide anew: the record set back is completed again, the others refused
    assert (first.header.processed, first.header.skipped) == (1, 3)
    assert _history_rows(stack, client, ids) == history + 1
    assert _dry_run(api, client, **body)["would_process"] == 0
    # And the same request again gives no other generation; another body under its id is a 409
    again = _backfill(api, runs, client, **body)
    other = api.post(f"/jobs/{JOB}/backfills", json={**body, "mode": "missing"})
    assert other.status_code == 409
    assert again.header.run_id == first.header.run_id
    assert len(_items(runs, first.header.run_id)) == 4
    assert _history_rows(stack, client, ids) == history + 1


def test_bad_backfills_are_refused_naming_the_field_and_unknown_clients_reported(
    runs: RunQueries, api: httpx.Client, new_client: Callable[..., str]
) -> None:
    client = new_client("refused", records=2)
    window = _window(client)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for change, field in (
        ({"to": window["from"], "from": window["to"]}, "to"),
        ({"to": future}, "to"),
        ({"mode": "everything"}, "mode"),
        ({"clientIds": []}, "clientIds"),
    ):
        answer = api.post(f"/jobs/{JOB}/backfills", json={**window, **change})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", field]
    replay = _backfill(api, runs, client, clientIds=[client, "no-such-client"])
    assert replay.header.received == 2
    assert f"client no-such-client: not configured for {JOB}" in replay.header.issues


def test_the_cli_prints_the_dry_run_and_follows_a_backfill(
    make_key: Callable[..., str], new_client: Callable[..., str]
) -> None:
    client = new_client("cli", records=3)
    window = _window(client)
    key = make_key(Scope.TRIGGER, Scope.READ)
    args = ["backfill", JOB, "--client", client, "--from", window["from"], "--to", window["to"]]
    env = {"JOBKIT_API_KEY": key, "COLUMNS": "200"}
    shown = CliRunner().invoke(app, [*args, "--dry-run"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{client}" in shown.output and "would process" in shown.output
    followed = CliRunner().invoke(app, [*args, "--wait"], env=env)
    assert followed.exit_code == 0, followed.output
    assert "SUCCEEDED" in followed.output and "backfill" in followed.output
