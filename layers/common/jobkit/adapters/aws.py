"""boto3 clients, created once per container and reused across invocations.

Every client is made here (Powertools' persistence layers and parameter providers are given
ours), so that on the local stack every AWS request a function makes can be counted at the SDK
(``jobkit.tooling.request_log``, the one seam to local tooling; nothing is hooked on AWS).
"""

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.table import BatchWriter
from boto3.dynamodb.transform import TransformationInjector, copy_dynamodb_params
from botocore.config import Config
from botocore.exceptions import ClientError

from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.errors import ThrottledError
from jobkit.tooling.request_log import instrument

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
else:
    SQSClient = Any

__all__ = [
    "SQSClient",
    "batch_get",
    "pages",
    "dynamodb_client",
    "Table",
    "dynamodb_table",
    "events_client",
    "invoke_async",
    "lambda_client",
    "scheduler_client",
    "secrets_client",
    "sqs_client",
]


def error_code(exc: BaseException) -> str:
    """botocore's modelled error code of a failed AWS request ("" for any other exception)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def condition_failed(exc: BaseException) -> bool:
    """A conditional write refused because its condition did not hold."""
    return error_code(exc) == "ConditionalCheckFailedException"


@contextmanager
def refused_as(error: Callable[[], Exception]) -> Iterator[None]:
    """A conditional write whose condition does not hold raises ``error()`` instead, from
    DynamoDB's refusal; any other failure stays what it is."""
    try:
        yield
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        raise error() from exc


def transaction_cancelled(exc: BaseException) -> bool:
    """A transaction refused as a whole: a condition of one item, or a conflicting write."""
    return error_code(exc) in ("TransactionCanceledException", "TransactionConflictException")


def failed_conditions(exc: BaseException) -> list[bool]:
    """Per item of a cancelled transaction, whether its own condition failed; empty when
    DynamoDB gave no reasons."""
    if not isinstance(exc, ClientError):
        return []
    reasons = exc.response.get("CancellationReasons") or []
    return [reason.get("Code") == "ConditionalCheckFailed" for reason in reasons]


# Parameter validation off: the services validate every request themselves (a malformed one
# is a ValidationException), and botocore's walk of each request against its model was 38% of
# a 25-item BatchWriteItem's client CPU (4.2 ms -> 2.6 ms), paid on every request of every
# function. botocore's own documentation offers the switch for this reason.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    parameter_validation=False,
)


class Table:
    """One DynamoDB table, in plain Python values: the part of boto3's Table resource the
    platform uses (``name``, ``meta.client``, item reads and writes, ``batch_writer``).

    Why not ``boto3.resource("dynamodb").Table(name)``: building the resource took about 14 ms
    of every cold start (boto3 loads the resource model, lists botocore's data directory to
    find it, and generates its classes), for a wrapper whose methods only add ``TableName``.
    The conversion itself stays boto3's (``PlainValuesClient``), and batches go through
    boto3's BatchWriter.
    """

    def __init__(self, client: Any, name: str) -> None:
        self.name = name
        self.meta = SimpleNamespace(client=client)

    def get_item(self, **kwargs: Any) -> Any:
        return self.meta.client.get_item(TableName=self.name, **kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        return self.meta.client.put_item(TableName=self.name, **kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        return self.meta.client.update_item(TableName=self.name, **kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        return self.meta.client.delete_item(TableName=self.name, **kwargs)

    def query(self, **kwargs: Any) -> Any:
        return self.meta.client.query(TableName=self.name, **kwargs)

    def scan(self, **kwargs: Any) -> Any:
        return self.meta.client.scan(TableName=self.name, **kwargs)

    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> BatchWriter:
        return BatchWriter(self.name, self.meta.client, overwrite_by_pkeys=overwrite_by_pkeys)


def dynamodb_table(name: str) -> Table:
    """A table whose client takes and returns plain Python values in every operation."""
    return Table(dynamodb_table_client(), name)


class PlainValuesClient:
    """The DynamoDB client in plain Python values: each operation's parameters go through
    boto3's own transformations (the conditions built with ``Key``/``Attr``, values
    serialized) and its response back, as boto3's resource has them done.

    Why not a second client carrying those transformations as event handlers, as the
    resource does: creating it took 12 to 20 ms of every cold start, beside the typed client
    that Powertools' persistence layers need anyway. This applies the same handlers, in the
    same order, around the one typed client.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._injector = TransformationInjector()
        self.meta = client.meta
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        """An operation's converting call, built on its first use and kept on the instance
        (later uses find it without coming here); anything else is the typed client's."""
        operation = self._client.meta.method_to_api_mapping.get(name)
        method = getattr(self._client, name)
        if operation is None:
            return method
        model = self._client.meta.service_model.operation_model(operation)
        injector = self._injector

        def call(**params: Any) -> Any:
            params = copy_dynamodb_params(params)  # the caller's values stay as they were
            injector.inject_condition_expressions(params, model)
            injector.inject_attribute_value_input(params, model)
            response = method(**params)
            injector.inject_attribute_value_output(response, model)
            return response

        setattr(self, name, call)
        return call


@cache
def dynamodb_table_client() -> Any:
    return PlainValuesClient(dynamodb_client())


@cache
def dynamodb_client() -> Any:
    """A plain DynamoDB client (typed attribute values), for libraries that build their own
    requests: the plain-values client would serialize their values a second time."""
    return instrument(boto3.client("dynamodb", config=_CONFIG))


@cache
def sqs_client() -> "SQSClient":
    return instrument(boto3.client("sqs", config=_CONFIG))


@cache
def events_client() -> Any:
    return instrument(boto3.client("events", config=_CONFIG))


@cache
def secrets_client() -> Any:
    return instrument(boto3.client("secretsmanager", config=_CONFIG))


@cache
def lambda_client() -> Any:
    return instrument(boto3.client("lambda", config=_CONFIG))


def invoke_async(function_name: str, payload: dict[str, Any]) -> None:
    """Invoke a function once, asynchronously: Lambda queues the event and retries it."""
    body = json.dumps(payload).encode()
    lambda_client().invoke(FunctionName=function_name, InvocationType="Event", Payload=body)


@cache
def scheduler_client() -> Any:
    return instrument(boto3.client("scheduler", config=_CONFIG))


BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
_UNPROCESSED_ROUNDS = 6


def batch_get(
    client: Any, table_name: str, keys: Sequence[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Every item of ``table_name`` found under these keys, 100 keys per BatchGetItem.

    A throttled table answers with some keys left unprocessed, and botocore does not ask for
    them again: they are asked again here, after a jittered wait that grows each round, as
    AWS advises (asking at once would only be throttled again). Keys still unprocessed after
    that raise ``ThrottledError``. Works with either client: a table's (plain values)
    or a plain one (typed values), since keys and items pass through untouched.
    """
    for start in range(0, len(keys), BATCH_GET_KEYS):
        request: dict[str, Any] = {table_name: {"Keys": list(keys[start : start + BATCH_GET_KEYS])}}
        for round_ in range(_UNPROCESSED_ROUNDS):
            response = client.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(table_name, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            if round_ + 1 < _UNPROCESSED_ROUNDS:
                time.sleep(backoff_seconds(round_ + 1, 0.05, 1.0))
        else:
            left = len(request.get(table_name, {}).get("Keys", []))
            raise ThrottledError(f"{table_name}: {left} key(s) still unprocessed (throttled)")


def pages(read: Callable[..., Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page a query or scan (``read``, with ``kwargs``) answers, as DynamoDB returns
    them, each next one started where the last stopped."""
    while True:
        page = read(**kwargs)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# Requests in flight at once when a caller has many to make (a planner's thousands of
# batches): each waits on the network, so they overlap; botocore's pool holds 10 connections.
PARALLEL_REQUESTS = 8


def in_parallel[T](call: Callable[[T], object], items: Sequence[T]) -> None:
    """``call`` on every item, up to PARALLEL_REQUESTS at once (threads: boto3's clients are
    thread-safe); the first exception is raised once every call has ended. One item, or
    none, runs here, on this thread."""
    if len(items) <= 1:
        for item in items:
            call(item)
        return
    # Here, not at the top: most callers make one request at a time.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(PARALLEL_REQUESTS, len(items))) as pool:
        for future in [pool.submit(call, item) for item in items]:
            future.result()
