"""What ops see: EMF metrics with the right values, failure streaks, the ratio rule."""

import json
from typing import Any

import pytest

from jobkit.runs.client_health import ratio_unhealthy
from jobkit.runs.models import processed_ratio
from tests.support import template
from tests.unit.pipeline import Pipeline


def _emf(output: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]


def _total(records: list[dict[str, Any]], name: str) -> float:
    return sum(sum(r[name]) if isinstance(r[name], list) else r[name] for r in records if name in r)


def test_emf_for_a_run_with_failures_has_the_right_values(pipeline: Pipeline, capsys: Any) -> None:
    pipeline.seed("acme", count=12, poison=("acme-r00004",))
    pipeline.plan(trigger="cli")
    capsys.readouterr()
    pipeline.drain()
    records = _emf(capsys.readouterr().out)
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "jobkit" for r in records)
    assert all(r["job_type"] == "sync-completed-records" for r in records)
    assert (
        _total(records, "RecordsReceived"),
        _total(records, "RecordsProcessed"),
        _total(records, "RecordsFailed"),
        _total(records, "DeadLettered"),
    ) == (12, 11, 1, 1)
    [streak] = [r for r in records if "ClientFailureStreak" in r]
    assert streak["ClientFailureStreak"] == [1.0] and streak["client_id"] == "acme"
    assert ["job_type", "service"] in streak["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert len([r for r in records if "RunDuration" in r]) == 1
    assert all(v > 0 for r in records if "ItemDuration" in r for v in r["ItemDuration"])


def test_failure_streak_reaches_three_and_resets_on_a_clean_run(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    for _ in range(3):
        pipeline.failing_run()
    assert pipeline.configs.get("sync-completed-records", "acme").failure_streak == 3
    pipeline.plan(trigger="cli")
    pipeline.drain()
    assert pipeline.configs.get("sync-completed-records", "acme").failure_streak == 0


def test_invalid_configuration_counts_as_a_failed_run_for_its_client(pipeline: Pipeline) -> None:
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={
            "job_type": "sync-completed-records",
            "client_id": "broken",
            "group_id": "north",
            "page_size": 0,
        }
    )
    pipeline.plan(trigger="cli")
    row = pipeline.aws.tables["ConfigTable"].get_item(
        Key={"job_type": "sync-completed-records", "client_id": "broken"}
    )["Item"]
    assert row["failure_streak"] == 1


def _alarm_fires(value: float) -> bool:
    """Evaluate the template's ratio alarm as CloudWatch would, for one datapoint."""
    alarm = template()["Resources"]["SyncCompletedRecordsRatioAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("jobkit", "ProcessedRatio")
    compare = {"LessThanThreshold": float.__lt__, "LessThanOrEqualToThreshold": float.__le__}[
        alarm["ComparisonOperator"]
    ]
    return bool(compare(value, float(alarm["Threshold"])))


@pytest.mark.parametrize(("processed", "unhealthy"), [(94, True), (95, False), (96, False)])
def test_ratio_rule_flags_below_95_percent(processed: int, unhealthy: bool) -> None:
    assert ratio_unhealthy(100, processed) is unhealthy
    assert _alarm_fires(processed_ratio(100, processed)) is unhealthy


def test_each_run_publishes_its_ratio_for_the_alarm(pipeline: Pipeline, capsys: Any) -> None:
    pipeline.seed("acme", count=12, poison=("acme-r00004",))
    pipeline.plan(trigger="cli")
    pipeline.drain()
    [ratio] = [r for r in _emf(capsys.readouterr().out) if "ProcessedRatio" in r]
    assert ratio["ProcessedRatio"] == [pytest.approx(100 * 11 / 12)]
    assert _alarm_fires(ratio["ProcessedRatio"][0])


def test_a_run_that_received_nothing_is_healthy() -> None:
    assert processed_ratio(0, 0) == 100.0


def test_every_aws_request_is_counted_and_logged_per_invocation(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobkit.adapters import aws as clients
    from jobkit.tooling.request_log import log_request_counts

    clients.sqs_client.cache_clear()
    clients.dynamodb_client.cache_clear()
    monkeypatch.setenv("JOBKIT_LOG_REQUESTS", "true")

    @log_request_counts
    def handler(event: dict[str, Any], context: Any) -> None:
        clients.sqs_client().list_queues()
        clients.sqs_client().list_queues()
        clients.dynamodb_client().list_tables()

    caplog.set_level("INFO")
    handler({}, None)
    [line] = [r for r in caplog.records if r.getMessage() == "aws requests"]
    assert line.requests == {"sqs.ListQueues": 2, "dynamodb.ListTables": 1}  # type: ignore[attr-defined]


def test_dynamodb_capacity_units_are_estimated_per_request_and_logged(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobkit.adapters import aws as clients
    from jobkit.tooling.request_log import log_request_counts

    clients.dynamodb_client.cache_clear()
    monkeypatch.setenv("JOBKIT_LOG_REQUESTS", "true")
    ddb = clients.dynamodb_client()
    ddb.create_table(
        TableName="units",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    @log_request_counts
    def handler(event: dict[str, Any], context: Any) -> None:
        put = {"Put": {"TableName": "units", "Item": {"pk": {"S": "a"}}}}
        other = {"Put": {"TableName": "units", "Item": {"pk": {"S": "b"}}}}
        ddb.transact_write_items(TransactItems=[put, other])  # 2 items x 2 units
        large = {"pk": {"S": "c"}, "outcomes": {"L": [{"S": "x" * 99}] * 25}}  # 2.5 KB
        ddb.put_item(TableName="units", Item=large)  # a unit per KB started: 3
        ddb.update_item(  # 1
            TableName="units",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
        ddb.get_item(TableName="units", Key={"pk": {"S": "a"}}, ConsistentRead=True)  # 1
        ddb.get_item(TableName="units", Key={"pk": {"S": "a"}})  # eventually consistent: 0.5

    caplog.set_level("INFO")
    handler({}, None)
    [line] = [r for r in caplog.records if r.getMessage() == "aws requests"]
    assert line.capacity_units == {  # type: ignore[attr-defined]
        "units.TransactWriteItems": 4.0,
        "units.PutItem": 3.0,
        "units.UpdateItem": 1.0,
        "units.GetItem": 1.5,
    }


def test_the_iam_permissions_each_request_needed_are_logged_per_invocation(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobkit.adapters import aws as clients
    from jobkit.tooling.request_log import log_request_counts

    monkeypatch.setenv("JOBKIT_LOG_REQUESTS", "true")
    clients.sqs_client.cache_clear()
    clients.dynamodb_client.cache_clear()
    ddb, sqs = clients.dynamodb_client(), clients.sqs_client()
    for name in ("a", "b"):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    queue_url = sqs.create_queue(QueueName="work")["QueueUrl"]

    @log_request_counts
    def handler(event: dict[str, Any], context: Any) -> None:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "a", "Item": {"pk": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": "b",
                        "Key": {"pk": {"S": "1"}},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "1"}},
                    }
                },
            ]
        )
        ddb.batch_get_item(RequestItems={"a": {"Keys": [{"pk": {"S": "1"}}]}})
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": "1", "MessageBody": "x"}])

    caplog.set_level("INFO")
    handler({}, None)
    [line] = [r for r in caplog.records if r.getMessage() == "aws requests"]
    # IAM's actions, not the operations: a transaction needs each item's, a batch of
    # messages needs SendMessage
    assert line.permissions == [  # type: ignore[attr-defined]
        "dynamodb:BatchGetItem table a",
        "dynamodb:PutItem table a",
        "dynamodb:UpdateItem table b",
        f"sqs:SendMessage queue {queue_url}",
    ]


def test_every_counted_record_reports_its_latency_from_enqueue(
    pipeline: Pipeline, capsys: Any
) -> None:
    pipeline.seed("acme", count=12)
    pipeline.plan(trigger="cli")
    capsys.readouterr()
    pipeline.drain()
    records = [r for r in _emf(capsys.readouterr().out) if "RecordLatency" in r]
    latencies = [v for r in records for v in r["RecordLatency"]]
    assert len(latencies) == 12
    assert all(0 <= v < 60_000 for v in latencies)
    assert all(r["job_type"] == "sync-completed-records" for r in records)
    assert records[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Milliseconds"


def test_a_malformed_request_is_refused_by_botocore_not_by_the_permission_notes(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ParamValidationError

    from jobkit.tooling.request_log import instrument

    # jobkit's own clients leave validation to the service (jobkit.adapters.aws): a
    # validating client shows whose error a malformed request meets.
    monkeypatch.setenv("JOBKIT_LOG_REQUESTS", "true")
    client: Any = instrument(boto3.client("dynamodb", config=Config(parameter_validation=True)))
    with pytest.raises(ParamValidationError):
        client.transact_write_items(TransactItems=[{"Put": {"Item": {}}}])
    with pytest.raises(ParamValidationError):
        client.query(IndexName="by-job")
