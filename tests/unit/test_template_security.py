"""Security properties of template.yaml that a reviewer would check by hand."""

from collections.abc import Iterator
from typing import Any

from tests.support import template

RESOURCES = template()["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in RESOURCES.items() if r["Type"] == kind}


def test_every_queue_table_topic_and_log_group_is_encrypted_with_our_key() -> None:
    for name, queue in _of_type("AWS::SQS::Queue").items():
        assert queue.get("KmsMasterKeyId") == "DataKey", name
    for name, table in _of_type("AWS::DynamoDB::Table").items():
        sse = table["SSESpecification"]
        assert (sse["SSEEnabled"], sse["SSEType"], sse["KMSMasterKeyId"]) == (
            True,
            "KMS",
            "DataKey",
        ), name
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], name
    for name, topic in _of_type("AWS::SNS::Topic").items():
        assert topic.get("KmsMasterKeyId") == "DataKey", name
    for name, group in _of_type("AWS::Logs::LogGroup").items():
        assert group.get("KmsKeyId") == "DataKey.Arn", name
    key = _of_type("AWS::KMS::Key")["DataKey"]
    assert key["EnableKeyRotation"] is True


def _statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []) or []:
            if isinstance(policy, dict) and "Statement" in policy:
                yield from ((name, s) for s in policy["Statement"])
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                yield from ((name, s) for s in policy["PolicyDocument"]["Statement"])


def test_no_wildcard_resource_where_a_resource_can_be_named() -> None:
    statements = list(_statements())
    assert len(statements) > 30
    wildcards = [(name, s["Action"]) for name, s in statements if s.get("Resource") in ("*", ["*"])]
    # ListSecrets cannot be scoped to resources (names are filtered by prefix in code).
    assert wildcards == [("CredentialRotation", "secretsmanager:ListSecrets")]


def test_no_secret_travels_in_an_environment_variable() -> None:
    environments = [template()["Globals"]["Function"]["Environment"]["Variables"]]
    environments += [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    for variables in environments:
        for name, value in variables.items():
            if any(word in name for word in ("SECRET", "TOKEN", "PASSWORD", "KEY")):
                # Only where secrets live, never what they hold.
                assert name.endswith(("_PREFIX", "_TABLE")), name
            assert "jk_" not in str(value) and "whsec_" not in str(value), name


def test_the_functions_may_use_our_key_through_the_services_without_kms_statements() -> None:
    # No function's policy grants KMS actions: the functions use the key only through SQS,
    # DynamoDB and Lambda, which call KMS as the caller
    kms_actions = [(name, s["Action"]) for name, s in _statements() if "kms:" in str(s["Action"])]
    assert kms_actions == []
    # So the key policy itself must grant this account's principals, through those services.
    # A statement naming the account root would not: it only lets IAM policies grant the key,
    # and AWS would refuse every send to an encrypted queue (KMS.AccessDeniedException).
    statements = _of_type("AWS::KMS::Key")["DataKey"]["KeyPolicy"]["Statement"]
    [use] = [s for s in statements if s["Sid"] == "UseThroughTheStacksServices"]
    assert use["Principal"] == {"AWS": "*"}
    conditions = use["Condition"]["StringEquals"]
    assert conditions["kms:CallerAccount"] == "AWS::AccountId"
    services = {service.split(".")[0] for service in conditions["kms:ViaService"]}
    assert {"sqs", "dynamodb", "lambda", "sns"} <= services
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(use["Action"])
