"""boto3 clients, created once per container and reused across invocations.

Every client is made here (Powertools' persistence layers and parameter providers are given
ours), so every AWS request a function makes is counted at the SDK, by service and operation
(``REQUESTS``): the benchmark reads those counts to price a record.
"""

from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
else:
    SQSClient = Any

__all__ = [
    "SQSClient",
    "dynamodb_client",
    "dynamodb_resource",
    "events_client",
    "lambda_client",
    "scheduler_client",
    "secrets_client",
    "sqs_client",
]

REQUESTS: Counter[str] = Counter()


def _counted[ClientT](client: ClientT) -> ClientT:
    meta: Any = getattr(client, "meta")  # noqa: B009 - typed stubs differ per service
    service = meta.service_model.service_name

    def count(model: Any, **_: Any) -> None:
        REQUESTS[f"{service}.{model.name}"] += 1

    meta.events.register("before-call", count)
    return client


_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10
)


@cache
def dynamodb_resource() -> Any:
    """The DynamoDB resource; its client accepts plain Python values in every operation."""
    resource = boto3.resource("dynamodb", config=_CONFIG)
    _counted(resource.meta.client)
    return resource


@cache
def dynamodb_client() -> Any:
    """A plain DynamoDB client (typed attribute values), for libraries that build their own
    requests: the resource's client would serialize their values a second time."""
    return _counted(boto3.client("dynamodb", config=_CONFIG))


@cache
def sqs_client() -> "SQSClient":
    return _counted(boto3.client("sqs", config=_CONFIG))


@cache
def events_client() -> Any:
    return _counted(boto3.client("events", config=_CONFIG))


@cache
def secrets_client() -> Any:
    return _counted(boto3.client("secretsmanager", config=_CONFIG))


@cache
def lambda_client() -> Any:
    return _counted(boto3.client("lambda", config=_CONFIG))


@cache
def scheduler_client() -> Any:
    return _counted(boto3.client("scheduler", config=_CONFIG))
