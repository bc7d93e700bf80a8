"""Alarms and the dashboard, as deployed: every seed rule wired to the alerts topic."""

import json

import pytest

from jobkit_cli.stack import Stack

pytestmark = pytest.mark.integration


def test_every_alarm_rule_is_deployed_and_pages_the_alerts_topic(stack: Stack) -> None:
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    ours = [a for a in alarms if a["AlarmName"].startswith(stack.name)]
    by_metric = {(a.get("Namespace"), a.get("MetricName")) for a in ours}
    for rule in [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("jobkit", "ProcessedRatio"),
        ("jobkit", "ClientFailureStreak"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Scheduler", "TargetErrorCount"),
    ]:
        assert rule in by_metric, rule
    topic = stack.outputs["AlertsTopicArn"]
    assert all(a["AlarmActions"] == [topic] for a in ours)


def test_job_health_dashboard_is_deployed(stack: Stack) -> None:
    body = stack.client("cloudwatch").get_dashboard(DashboardName=stack.outputs["DashboardName"])[
        "DashboardBody"
    ]
    titles = [w["properties"]["title"] for w in json.loads(body)["widgets"]]
    assert "DLQ depth" in titles and "Received vs processed" in titles
