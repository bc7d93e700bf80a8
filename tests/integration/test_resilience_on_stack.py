"""Client retries, circuits, credential rotation and the rate limit on the deployed stack.

The local stack runs with short timings (samconfig.toml): circuits open after 3 failures and
cool down in 10 s, retries start at 3 s and stop after 2, the provider allows 20 requests per
second with a burst of 10. One-off schedules fire on MiniStack's 10 s scheduler tick.
"""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.runs.models import ClientRun, RunStatus
from jobkit.runs.queries import RunQueries
from jobkit_cli.stack import Stack
from tests.integration.conftest import acks, fire, log_lines, wait_for_run, wait_until

pytestmark = pytest.mark.integration


def _client_row(runs: RunQueries, run_id: str, client_id: str) -> ClientRun | None:
    view = runs.view(run_id)
    return next((c for c in view.clients if c.client_id == client_id), None) if view else None


def _circuit(stack: Stack, client_id: str) -> str:
    item = stack.table("ControlTableName").get_item(Key={"id": f"external#{client_id}"})
    return str(item.get("Item", {}).get("state", "CLOSED"))


def _fail(external: httpx.Client, *client_ids: str) -> None:
    external.put(
        "/_admin/faults", json={"error_rate": 1.0, "clients": list(client_ids)}
    ).raise_for_status()


def test_client_failing_twice_then_recovering_succeeds_on_retry(
    stack: Stack, runs: RunQueries, external: httpx.Client, new_client: Any
) -> None:
    client = new_client("flaky", records=5)
    _fail(external, client)
    planned = fire(stack, trigger="cli", client_ids=[client])

    def failed_twice() -> bool:
        row = _client_row(runs, planned["run_id"], client)
        return row is not None and row.retries >= 2

    wait_until(failed_twice, timeout=90, what="the second failed attempt")
    external.put("/_admin/faults", json={}).raise_for_status()  # the endpoint recovers

    view = wait_for_run(runs, planned["run_id"], timeout=90)
    assert view.header.status is RunStatus.SUCCEEDED
    [row] = view.clients
    assert (row.result, row.attempt, row.retries, row.processed) == ("SUCCEEDED", 2, 2, 5)
    assert acks(external, client) == 5


def test_client_failing_past_the_cap_is_poisoned_and_alarmed(
    stack: Stack, runs: RunQueries, external: httpx.Client, new_client: Any
) -> None:
    doomed, healthy = new_client("doomed", records=3), new_client("healthy", records=4)
    _fail(external, doomed)
    planned = fire(stack, trigger="cli", client_ids=[doomed, healthy])
    view = wait_for_run(runs, planned["run_id"], timeout=120)

    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    rows = {row.client_id: row for row in view.clients}
    assert rows[healthy].result == "SUCCEEDED" and rows[healthy].processed == 4
    assert rows[doomed].result == "FAILED" and rows[doomed].retries == 3
    error = rows[doomed].error
    assert error is not None and error.startswith("gave up after 3 attempt(s)")
    assert any(issue.startswith(f"client {doomed}: poison") for issue in view.header.issues)
    poisoned = [json.loads(line) for line in log_lines(stack, "ProcessorFunctionName", doomed)]
    assert any(line.get("ClientsPoisoned") == [1.0] for line in poisoned)
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert any(
        a["MetricName"] == "ClientsPoisoned"
        and a["Threshold"] == 0
        and a["ComparisonOperator"] == "GreaterThanThreshold"
        for a in alarms
    )


def test_circuit_opens_planner_skips_then_half_open_trial_closes_it(
    stack: Stack, runs: RunQueries, external: httpx.Client, new_client: Any
) -> None:
    client = new_client("outage", records=4)
    probe = stack.outputs["HealthProbeName"]
    _fail(external, client)
    # The probe feeds the circuit: three failures in a row open it, the fourth is not called.
    statuses = [stack.invoke(probe, {"client_ids": [client]})["probes"][0] for _ in range(4)]
    assert [s["status"] for s in statuses] == ["down", "down", "down", "circuit_open"]
    assert _circuit(stack, client) == "OPEN"

    planned = fire(stack, trigger="cli", client_ids=[client])
    header = runs.header(planned["run_id"])
    assert header is not None
    assert any(i.startswith(f"client {client}: circuit open") for i in header.issues)
    row = _client_row(runs, planned["run_id"], client)
    assert row is not None and row.status.value == "WAITING_RETRY" and row.next_retry_at

    external.put("/_admin/faults", json={}).raise_for_status()
    # The retry waits out the cool-down; its fetch is the half-open trial, which closes it.
    view = wait_for_run(runs, planned["run_id"], timeout=90)
    assert view.header.status is RunStatus.SUCCEEDED and view.header.processed == 4
    assert _circuit(stack, client) == "CLOSED"


def test_credential_rotation_succeeds_and_a_failing_test_step_keeps_the_old_one(
    stack: Stack, runs: RunQueries, external: httpx.Client, new_client: Any
) -> None:
    rotated, refused = (
        new_client("rotating", records=3, credentials=True),
        new_client("stuck", records=2, credentials=True),
    )
    prefix = stack.outputs["CredentialsSecretPrefix"]
    secrets = stack.client("secretsmanager")

    def current(client_id: str) -> str:
        raw = secrets.get_secret_value(SecretId=f"{prefix}/{client_id}", VersionStage="AWSCURRENT")
        return str(json.loads(raw["SecretString"])["token"])

    before = {client_id: current(client_id) for client_id in (rotated, refused)}
    first = fire(stack, trigger="cli", client_ids=[rotated, refused])
    assert wait_for_run(runs, first["run_id"]).header.processed == 5  # tokens accepted

    # Secrets Manager's way: the four steps, one invocation each, with one version id.
    rotation = stack.outputs["CredentialRotationName"]
    token = str(uuid.uuid4())
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        stack.invoke(
            rotation,
            {"SecretId": f"{prefix}/{rotated}", "ClientRequestToken": token, "Step": step},
        )
    assert current(rotated) != before[rotated]

    # The schedule's way, for a client whose provider will not activate a new token.
    external.put(f"/_admin/clients/{refused}/credential-faults", json={"refuse_new": True})
    result = stack.invoke(rotation, {"client_ids": [refused]})
    assert result["rotated"] == [] and "HTTP 401" in result["failed"][refused]
    assert current(refused) == before[refused]

    # The provider now accepts only the new token: the processor's cached old one is refused
    # once, read again, and the run goes through.
    external.put(
        f"/_admin/clients/{rotated}/credentials", json={"tokens": [current(rotated)]}
    ).raise_for_status()
    external.post(f"/_admin/clients/{rotated}/records/{rotated}-r00001/bump").raise_for_status()
    second = fire(stack, trigger="cli", client_ids=[rotated, refused])
    view = wait_for_run(runs, second["run_id"])
    assert view.header.status is RunStatus.SUCCEEDED
    rows = {row.client_id: row for row in view.clients}
    # Fetched and acknowledged with the new token at the first try (already COMPLETED here).
    assert (rows[rotated].received, rows[rotated].skipped, rows[rotated].retries) == (1, 1, 0)


def test_rate_limit_holds_under_a_burst(stack: Stack, external: httpx.Client) -> None:
    configs = ConfigStore(stack.table("ConfigTableName"))
    clients = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    for client_id in clients:
        configs.put(ClientConfig(job_type="sync-contacts", client_id=client_id, group_id="north"))
    before = external.get("/_admin/rate").json()["requests"]
    probe = stack.outputs["HealthProbeName"]
    # Four probes at once, 120 calls that would all go out within a second or two unpaced.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: stack.invoke(probe, {"client_ids": clients}), range(4)))
    assert all(len(result["probes"]) == 30 for result in results)
    rate = external.get("/_admin/rate", params={"window_ms": 1000}).json()
    assert rate["requests"] - before >= 120
    # 20 per second plus a burst of 10; a little slack for the network between token and call.
    assert rate["max_in_window"] <= 10 + 20 + 3, rate
    for client_id in clients:
        configs.delete("sync-contacts", client_id)


def test_operator_sets_rotates_and_probes_a_credential_from_the_cli(
    stack: Stack, external: httpx.Client, new_client: Any
) -> None:
    from typer.testing import CliRunner

    from jobkit_cli.main import app

    client = new_client("ops", records=1)
    token = f"ops-token-{uuid.uuid4().hex}"
    external.put(f"/_admin/clients/{client}/credentials", json={"tokens": [token]})
    runner = CliRunner()
    env = {"COLUMNS": "200"}

    stored = runner.invoke(app, ["credentials", "set", client, "--token", token], env=env)
    assert stored.exit_code == 0 and token not in stored.output
    configs = ConfigStore(stack.table("ConfigTableName"))
    config = configs.get("sync-completed-records", client)
    configs.put(config.model_copy(update={"credentials": True}))

    rotated = runner.invoke(app, ["credentials", "rotate", client], env=env)
    assert rotated.exit_code == 0 and f"{client}: rotated" in rotated.output
    assert len(external.get(f"/_admin/clients/{client}/credentials").json()["fingerprints"]) == 2

    probed = runner.invoke(app, ["probe", client], env=env)
    assert probed.exit_code == 0
    [line] = [line for line in probed.output.splitlines() if client in line]
    assert "up" in line and "CLOSED" in line


def test_operator_promotes_a_pilot_only_after_its_healthy_runs(
    stack: Stack, runs: RunQueries, external: httpx.Client, new_client: Any
) -> None:
    from typer.testing import CliRunner

    from jobkit_cli.main import app

    client = new_client("pilot", records=2, pilot=True)
    planned = fire(stack, trigger="cli", client_ids=[client])
    assert wait_for_run(runs, planned["run_id"]).header.status is RunStatus.SUCCEEDED
    runner = CliRunner()
    env = {"COLUMNS": "200"}

    listed = runner.invoke(app, ["clients", "list", "sync-completed-records"], env=env)
    [line] = [line for line in listed.output.splitlines() if client in line]
    cells = [cell.strip() for cell in line.split("│")[1:-1]]
    assert dict(zip(("pilot", "healthy runs"), cells[3:5], strict=True)) == {
        "pilot": "True",
        "healthy runs": "1",
    }

    refused = runner.invoke(app, ["clients", "promote", "sync-completed-records", client], env=env)
    assert refused.exit_code == 1
    assert "has 1 healthy run(s) in a row; promotion expects 2" in " ".join(refused.output.split())
    assert ConfigStore(stack.table("ConfigTableName")).get("sync-completed-records", client).pilot

    forced = runner.invoke(
        app, ["clients", "promote", "sync-completed-records", client, "--force"], env=env
    )
    assert forced.exit_code == 0 and "promoted from pilot" in forced.output
    config = ConfigStore(stack.table("ConfigTableName")).get("sync-completed-records", client)
    assert (config.pilot, config.healthy_runs) == (False, 1)
