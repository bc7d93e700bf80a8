"""The handlers themselves, driven by the sample events in events/ (as `sam local invoke`)."""

import importlib
import json
import sys
import time
from types import ModuleType
from typing import Any

import pytest

from jobkit.domain.errors import PermanentError
from tests.support import LambdaContext, load_event


@pytest.fixture
def handler_env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    values = {
        "JOB_TYPE": "sync-completed-records",
        "CONFIG_TABLE": "ConfigTable",
        "RUNS_TABLE": "RunsTable",
        "RECORDS_TABLE": "RecordsTable",
        "IDEMPOTENCY_TABLE": "IdempotencyTable",
        "WORK_QUEUE_URL": aws.work_queue_url,
        "WORK_DLQ_URL": aws.dlq_url,
        "EXTERNAL_BASE_URL": "http://127.0.0.1:9",
        "EVENT_BUS_NAME": "jobkit-events",
        "CONTROL_TABLE": "ControlTable",
        "RETRY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:retry",
        "RETRY_ROLE_ARN": "arn:aws:iam::123456789012:role/retry",
        "RETRY_SCHEDULE_GROUP": "jobkit-schedules",
        "RETRY_DLQ_ARN": "arn:aws:sqs:us-east-1:123456789012:schedule-dlq",
        "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return aws


def _fresh(module: str) -> ModuleType:
    """Import a handler module anew: settings and clients are built at import (cold start)."""
    sys.modules.pop(module, None)
    from jobkit.adapters import aws as aws_clients

    aws_clients.dynamodb_table_client.cache_clear()
    aws_clients.sqs_client.cache_clear()
    aws_clients.scheduler_client.cache_clear()
    return importlib.import_module(module)


def test_planner_opens_the_run_named_after_the_scheduled_time(handler_env: Any) -> None:
    app = _fresh("planner.app")
    result = app.handler(load_event("planner-schedule"), LambdaContext())
    assert result["run_id"] == "sync-completed-records.20261123T060000Z"


def test_planner_accepts_the_classic_scheduled_rule_event(handler_env: Any) -> None:
    app = _fresh("planner.app")
    result = app.handler(load_event("planner-scheduled-rule"), LambdaContext())
    assert result["run_id"] == "sync-completed-records.20261123T060000Z"


def test_planner_run_requested_for_an_unconfigured_client_says_so(handler_env: Any) -> None:
    app = _fresh("planner.app")
    result = app.handler(load_event("planner-api"), LambdaContext())
    header = handler_env.tables["RunsTable"].get_item(
        Key={"run_id": result["run_id"], "sk": "RUN"}
    )["Item"]
    assert header["issues"][0] == "client acme: not configured for sync-completed-records"


def test_planner_rejects_a_bad_event_naming_the_field(handler_env: Any) -> None:
    app = _fresh("planner.app")
    with pytest.raises(PermanentError, match="invalid planner event: trigger: Input should be"):
        app.handler({"trigger": "sometimes"}, LambdaContext())


def _metric_values(output: str, name: str) -> list[Any]:
    """The values of one metric in the EMF documents a handler printed."""
    documents = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    return [doc[name] for doc in documents if name in doc]


def test_a_scheduled_fire_publishes_how_many_clients_are_stale(
    handler_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a client whose last clean run was a day ago (stale after 90 minutes)
    from datetime import UTC, datetime, timedelta

    from jobkit.adapters.aws import dynamodb_table
    from jobkit.adapters.config import ClientConfig
    from jobkit.adapters.config_store import ConfigStore

    configs = ConfigStore(dynamodb_table("ConfigTable"))
    configs.put(ClientConfig(job_type="sync-completed-records", client_id="late", group_id="n"))
    day_ago = datetime.now(UTC) - timedelta(days=1)
    configs.record_result("sync-completed-records", "late", failed=False, started=day_ago)
    app = _fresh("planner.app")
    capsys.readouterr()
    # When the schedule fires, and when a run is asked for by hand
    app.handler(load_event("planner-schedule"), LambdaContext())
    scheduled = capsys.readouterr().out
    app.handler(load_event("planner-api"), LambdaContext())
    manual = capsys.readouterr().out
    # Then the fire counts the stale client; a manual run is no fire and counts nothing
    assert _metric_values(scheduled, "ClientsStale") == [[1.0]]
    assert _metric_values(manual, "ClientsStale") == []
    # and the job's runs stuck planning (none here)
    assert _metric_values(scheduled, "RunsStuckPlanning") == [[0.0]]
    assert _metric_values(manual, "RunsStuckPlanning") == []


def test_settings_missing_fail_at_cold_start_naming_the_variable(
    handler_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORK_DLQ_URL")
    with pytest.raises(ValueError, match="WORK_DLQ_URL"):
        _fresh("processor.app")


def test_processor_dead_letters_bad_messages_and_fails_none(handler_env: Any) -> None:
    # A record item for a client with no configuration, and a body that is not JSON
    app = _fresh("processor.app")
    result = app.handler(load_event("processor-mixed-batch"), LambdaContext())
    assert result == {"batchItemFailures": []}
    messages = handler_env.sqs.receive_message(
        QueueUrl=handler_env.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    reasons = sorted(m["MessageAttributes"]["error_type"]["StringValue"] for m in messages)
    assert reasons == ["ConfigNotFoundError", "InvalidEnvelopeError"]


def test_retry_worker_schedules_its_next_attempt_at_itself_in_the_stacks_group(
    handler_env: Any,
) -> None:
    # Given acme's circuit open, and a run planned for acme: the planner schedules a retry
    import boto3
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
        CircuitBreakerDynamoDBPersistence,
    )

    from jobkit.adapters.circuits import circuit_name
    from jobkit.adapters.config import ClientConfig
    from jobkit.adapters.config_store import ConfigStore

    scheduler = boto3.client("scheduler")
    scheduler.create_schedule_group(Name="jobkit-schedules")
    ConfigStore(handler_env.tables["ConfigTable"]).put(
        ClientConfig(job_type="sync-completed-records", client_id="acme", group_id="north")
    )
    CircuitBreakerDynamoDBPersistence(table_name="ControlTable").save_open(
        circuit_name("acme"), 3, int(time.time()) + 300
    )
    _fresh("planner.app").handler(load_event("planner-api"), LambdaContext())
    [first] = scheduler.list_schedules(GroupName="jobkit-schedules")["Schedules"]
    planned = scheduler.get_schedule(Name=first["Name"], GroupName="jobkit-schedules")
    assert planned["Target"]["Arn"] == "arn:aws:lambda:us-east-1:123456789012:function:retry"

    # When the retry worker runs it while the circuit is still open
    worker_arn = "arn:aws:lambda:us-east-1:123456789012:function:jobkit-b-RetryWorker-1A2B3C"
    event = json.loads(planned["Target"]["Input"])
    result = _fresh("retry.app").handler(event, LambdaContext(invoked_function_arn=worker_arn))

    # Then its next attempt invokes the worker itself (the template cannot name it), in the
    # stack's own group, and a failed invoke lands in the schedule DLQ instead of vanishing
    assert result == {"result": "delayed", "attempt": 1}
    names = {s["Name"] for s in scheduler.list_schedules(GroupName="jobkit-schedules")["Schedules"]}
    [later] = names - {first["Name"]}
    again = scheduler.get_schedule(Name=later, GroupName="jobkit-schedules")
    assert again["Target"]["Arn"] == worker_arn
    assert again["Target"]["DeadLetterConfig"] == {
        "Arn": "arn:aws:sqs:us-east-1:123456789012:schedule-dlq"
    }
    every = scheduler.list_schedules()["Schedules"]  # nothing in the account's shared group
    assert {s["GroupName"] for s in every} == {"jobkit-schedules"}
