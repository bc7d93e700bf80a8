"""The handlers themselves, driven by the sample events in events/ (as `sam local invoke`)."""

import importlib
import sys
from types import ModuleType
from typing import Any

import pytest

from jobkit.errors import PermanentError
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
        "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return aws


def _fresh(module: str) -> ModuleType:
    """Import a handler module anew: settings and clients are built at import (cold start)."""
    sys.modules.pop(module, None)
    from jobkit import aws as aws_clients

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
